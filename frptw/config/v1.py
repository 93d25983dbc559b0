"""Decoding a v1 document (see :mod:`frptw.config.documents`) into the typed model.

One generic decoder walks the dataclasses, with Go ``encoding/json`` rules, which frp uses:

* keys match fields case-insensitively (``ServerAddr`` = ``serverAddr``); later duplicates win;
* in strict mode (frp's default) an unknown key is an error, otherwise it is ignored (we warn);
* ``null`` leaves the default; otherwise the JSON type must fit exactly: no string for a
  number, no number for a string, no fractional number for an integer, integers within int64;
* proxies, visitors and plugins are chosen by their ``type`` key (``unknown proxy type: X``).

The INI loader produces the same kind of document, so both formats share this decoder and the
defaults applied by the dataclasses.
"""

import dataclasses
import typing
from functools import lru_cache
from typing import Any, Collection, Dict, List, Optional, Tuple

from frptw.config.bandwidth import BandwidthError, parse_bandwidth
from frptw.config.goconv import INT64_MAX, INT64_MIN
from frptw.config.plugins import PLUGIN_TYPES, VISITOR_PLUGIN_TYPES, ClientPluginOptions
from frptw.config.problems import Problem, Scope, quote
from frptw.config.proxies import PROXY_TYPES, ProxyConfig
from frptw.config.visitors import VISITOR_TYPES, VisitorConfig


def v1_key(field: "dataclasses.Field[Any]") -> str:
    """The v1 spelling of a field's key: explicit metadata, else camelCase of the attribute."""
    if "key" in field.metadata:
        return field.metadata["key"]
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@lru_cache(maxsize=None)
def fields_by_key(cls: type) -> Dict[str, Tuple[str, str, Any, Dict[str, Any]]]:
    """lower-cased v1 key -> (attribute, v1 key, type hint, metadata) for a dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        name = v1_key(f)
        out[name.lower()] = (f.name, name, hints[f.name], dict(f.metadata))
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


class Decoder:
    """Decodes one document; collects warnings (ignored unknown keys) in ``warnings``.

    ``known_plugins`` restricts which proxy plugin types get their own options class; any other
    type becomes a bare :class:`ClientPluginOptions`.  The INI loader uses it: frp's INI
    converter only knows some plugins and accepts any other name without options.
    """

    def __init__(self, strict: bool = True, known_plugins: Optional[Collection[str]] = None):
        self.strict = strict
        self.known_plugins = known_plugins
        self.warnings: List[str] = []

    def decode(self, cls: type, data: Any, where: str = "", scope: Scope = None) -> Any:
        if not isinstance(data, dict):
            raise Problem(f"expected an object of keys, got {_json_type(data)}", where, scope)
        fields = fields_by_key(cls)
        kwargs: Dict[str, Any] = {}
        for raw_key, value in data.items():
            entry = fields.get(raw_key.lower())
            path = f"{where}.{raw_key}" if where else raw_key
            if entry is None:
                if self.strict:
                    raise Problem(f'unknown key "{raw_key}"', where, scope)
                self.warnings.append(f"unknown key {path!r} ignored")
                continue
            attr, name, hint, metadata = entry
            if value is None:
                continue
            path = f"{where}.{name}" if where else name
            kwargs[attr] = self._value(hint, value, path, scope, metadata.get("decode"))
        return cls(**kwargs)

    def _value(self, hint: Any, value: Any, path: str, scope: Scope, special: Optional[str]) -> Any:
        if special == "ports":
            return [self._port_range(item, f"{path}[{i}]", scope) for i, item in enumerate(self._list(value, path, scope))]
        if special == "bandwidth":
            return self._bandwidth(value, path, scope)
        if special in ("plugin", "visitor_plugin"):
            return self._plugin(value, path, scope, special)
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Union:  # Optional[X]
            return self._value(args[0], value, path, scope, None)
        if hint is ProxyConfig or hint is VisitorConfig:
            return self._typed_entry(hint, value, path, scope)
        if origin is list:
            return [
                self._zero(args[0]) if item is None and args[0] not in (ProxyConfig, VisitorConfig)
                else self._value(args[0], item, f"{path}[{i}]", scope, None)
                for i, item in enumerate(self._list(value, path, scope))
            ]
        if origin is dict:
            if not isinstance(value, dict):
                raise Problem(f"expected an object, got {_json_type(value)}", path, scope)
            return {
                k: self._zero(args[1]) if v is None else self._value(args[1], v, f"{path}.{k}", scope, None)
                for k, v in value.items()
            }
        if dataclasses.is_dataclass(hint):
            return self.decode(hint, value, path, scope)
        return self._scalar(hint, value, path, scope)

    @staticmethod
    def _zero(hint: Any) -> Any:
        return hint() if dataclasses.is_dataclass(hint) or hint in (str, int, bool) else None

    @staticmethod
    def _list(value: Any, path: str, scope: Scope) -> List[Any]:
        if not isinstance(value, list):
            raise Problem(f"expected a list, got {_json_type(value)}", path, scope)
        return value

    @staticmethod
    def _scalar(hint: Any, value: Any, path: str, scope: Scope) -> Any:
        if hint is bool:
            if isinstance(value, bool):
                return value
            raise Problem(f"expected true or false, got {_json_type(value)} {quote(value)}", path, scope)
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                if INT64_MIN <= value <= INT64_MAX:
                    return value
                raise Problem(f"{value} does not fit in a 64-bit integer", path, scope)
            what = "a fractional number" if isinstance(value, float) else _json_type(value)
            raise Problem(f"expected an integer, got {what} {quote(value)}", path, scope)
        if hint is str:
            if isinstance(value, str):
                return value
            raise Problem(f"expected a string, got {_json_type(value)} {quote(value)}", path, scope)
        raise TypeError(f"no decoder for {hint!r}")  # a model definition error, not user input

    def _port_range(self, item: Any, path: str, scope: Scope) -> Tuple[int, int]:
        if not isinstance(item, dict):
            raise Problem(f"expected an object like {{start = 2000, end = 3000}} or {{single = 3001}}, got {_json_type(item)}", path, scope)
        numbers = {"start": 0, "end": 0, "single": 0}
        for raw_key, value in item.items():
            name = raw_key.lower()
            if name not in numbers:
                if self.strict:
                    raise Problem(f'unknown key "{raw_key}"', path, scope)
                continue
            if value is not None:
                numbers[name] = self._scalar(int, value, f"{path}.{name}", scope)
        if numbers["single"] > 0:
            return (numbers["single"], numbers["single"])
        return (numbers["start"], numbers["end"])

    def _bandwidth(self, value: Any, path: str, scope: Scope) -> str:
        text = self._scalar(str, value, path, scope)
        try:
            parse_bandwidth(text)
        except BandwidthError as e:
            raise Problem(str(e), path, scope) from None
        return text.strip()

    def _type_of(self, value: Any, path: str, scope: Scope) -> str:
        kind = ""
        for raw_key, item in value.items():
            if raw_key.lower() == "type" and item is not None:
                kind = self._scalar(str, item, f"{path}.type", scope)
        return kind

    def _typed_entry(self, base: type, value: Any, path: str, scope: Scope) -> Any:
        what = "proxy" if base is ProxyConfig else "visitor"
        registry = PROXY_TYPES if base is ProxyConfig else VISITOR_TYPES
        index = int(path.rsplit("[", 1)[1][:-1])
        if not isinstance(value, dict):
            raise Problem(f"each {what} must be an object with a type, got {_json_type(value)}", "", (what, ""), index)
        names = [v for k, v in value.items() if k.lower() == "name" and isinstance(v, str)]
        entry_scope: Scope = (what, names[-1] if names else "")
        kind = self._type_of(value, "", entry_scope)
        if kind not in registry:
            allowed = ", ".join(registry)
            problem = f"missing type (one of {allowed})" if not kind else f"unknown {what} type {quote(kind)} (expected one of {allowed})"
            raise Problem(problem, "type", entry_scope, index)
        try:
            return self.decode(registry[kind], value, "", entry_scope)
        except Problem as e:
            e.index = index
            raise

    def _plugin(self, value: Any, path: str, scope: Scope, special: str) -> Any:
        registry = PLUGIN_TYPES if special == "plugin" else VISITOR_PLUGIN_TYPES
        if not isinstance(value, dict):
            raise Problem(f"expected an object with a type, got {_json_type(value)}", path, scope)
        kind = self._type_of(value, path, scope)
        if special == "plugin" and self.known_plugins is not None and kind not in self.known_plugins:
            return ClientPluginOptions(type=kind)
        if not kind:
            raise Problem(f"plugin type is empty (one of {', '.join(registry)})", f"{path}.type", scope)
        if kind not in registry:
            raise Problem(f"unknown plugin type {quote(kind)} (expected one of {', '.join(registry)})", f"{path}.type", scope)
        return self.decode(registry[kind], value, path, scope)
