"""Reading the v1 formats (TOML, YAML, JSON) into one JSON-shaped document, the way frp does.

frp never decodes TOML or YAML into its config structs directly: it converts them to JSON and
decodes that with Go's ``encoding/json``.  The conversion decides what is accepted, so it is
reproduced here: the result only contains ``dict`` (string keys), ``list``, ``str``, ``int``,
``float``, ``bool`` and ``None``.

* Detection (frp 0.65, independent of the file name): try TOML; if that fails and the text
  starts with ``{`` read it as JSON, otherwise as YAML.  A ``.toml`` file with a syntax error
  therefore falls through to YAML and usually fails there with an unrelated message; we keep the
  verdict but report the TOML error.
* A float without fraction becomes an int (Go marshals ``7000.0`` as ``7000``), so ``7000.0``
  is a valid port in TOML and YAML, but not in JSON.  Infinities and NaN cannot be marshalled.
* JSON: only the first value is read (trailing text is ignored, as Go's ``json.Decoder`` does).
* YAML (:mod:`frptw.config.goyaml`) follows go-yaml v2 (YAML 1.1): ``y``, ``yes``, ``on``... are booleans; numbers use Go's
  syntax (``0o17``, ``017``, ``7_000``); timestamps stay strings; only the first document is
  read; top-level keys starting with ``.`` are dropped (they hold anchors for merges).
"""

import datetime
import decimal
import functools
import json
import math
import re
from typing import Any, Callable, Dict, Tuple

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from frptw.errors import FrpError


class DocumentError(FrpError, ValueError):
    """The text is not valid in the format tried; ``line`` is 1-based or 0 when unknown."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line


#: Longer integers are refused rather than converted (Go's int64 holds 19 digits).
_MAX_INT_DIGITS = 4000
_MAX_INT_BITS = 13000  # fewer than 4000 decimal digits


def _jsonable(value: Any) -> Any:
    """Go's JSON marshalling of a TOML/YAML value."""
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        # A hexadecimal literal is read whatever its length, but could not even be printed in
        # the "does not fit" message (ValueError: integer string conversion limit).
        raise DocumentError(f"integer of {value.bit_length()} bits is out of range")
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise DocumentError(f"{value} is not allowed (frp cannot convert infinities or NaN to JSON)")
        # Go writes the shortest decimal that round-trips, e.g. 9223372036854775809.0 as
        # 9223372036854776000 (which then overflows an int64, as in frp).
        return int(decimal.Decimal(repr(value))) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise DocumentError(f"unsupported value {value!r}")


def _depth_guarded(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Refuse a document nested deeper than Python's recursion limit with a DocumentError.

    The TOML, JSON and YAML readers (and :func:`_jsonable`) recurse once per nesting level, so
    ``[[[[...`` a few thousand deep raised RecursionError, a traceback instead of a config
    error (found by bench/fuzz.py).  Go's readers give up at a fixed depth too (encoding/json at
    10000); no frp setting nests more than four levels."""
    @functools.wraps(parse)
    def guarded(text: str) -> Any:
        try:
            return parse(text)
        except RecursionError:
            raise DocumentError("the document is nested too deeply") from None
    return guarded


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(_jsonable(key))


@_depth_guarded
def parse_toml(text: str) -> Any:
    """TOML 1.0, converted like frp converts it to JSON."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = int(m.group(1)) if (m := re.search(r"line (\d+)", str(e))) else 0
        raise DocumentError(f"TOML syntax error: {e}", line) from None
    except ValueError as e:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise DocumentError(f"TOML value error: {e}") from None
    return _jsonable(document)


@_depth_guarded
def parse_json(text: str) -> Any:
    """The first JSON value of ``text`` (frp ignores what follows it)."""
    body = text.lstrip(" \t\r\n")

    def refuse_constant(name: str) -> Any:
        raise DocumentError(f"invalid JSON literal {name}")

    def parse_int(digits: str) -> int:
        # Python refuses to convert integers of thousands of digits (ValueError); none fits
        # any frp setting (Go reports it out of range for the field).
        if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
            raise DocumentError(f"JSON integer of {len(digits)} digits is out of range")
        return int(digits)

    try:
        value, _end = json.JSONDecoder(parse_constant=refuse_constant, parse_int=parse_int).raw_decode(body)
    except json.JSONDecodeError as e:
        line = text[: len(text) - len(body)].count("\n") + e.lineno
        raise DocumentError(f"JSON syntax error: {e.msg} (column {e.colno})", line) from None
    return value


@_depth_guarded
def parse_yaml(text: str) -> Any:
    """The first YAML document, with go-yaml v2's scalars, converted like frp converts it.

    PyYAML is imported on first use (:mod:`frptw.config.goyaml`): most configurations are INI or
    TOML, and it costs every frpc and frps start-up tens of milliseconds."""
    from frptw.config.goyaml import first_document

    value = first_document(text)
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if not (isinstance(k, str) and k.startswith("."))}
    return _jsonable(value)


def parse_v1(text: str, hint: str = "") -> Tuple[Dict[str, Any], str]:
    """frp's v1 pipeline: TOML, else JSON when the text starts with ``{``, else YAML.

    Returns the top-level mapping (``{}`` for an empty document) and the format that read it.
    When the text is neither a TOML document nor a JSON/YAML *mapping*, the error reported is
    the TOML one if the file is named ``.toml`` or the fallback gave no usable structure (the
    usual case for a TOML typo), so the user sees the line that is actually wrong.
    """
    try:
        return parse_toml(text), "toml"
    except DocumentError as toml_error:
        fallback = "json" if text.lstrip(" \t\r\n").startswith("{") else "yaml"
        try:
            document = parse_json(text) if fallback == "json" else parse_yaml(text)
        except DocumentError:
            if hint == "toml":
                raise toml_error from None
            raise
        if document is None:
            return {}, fallback
        if isinstance(document, dict):
            return document, fallback
        if hint in ("toml", "") and fallback == "yaml":
            raise toml_error from None
        kind = "a list" if isinstance(document, list) else "a single value"
        raise DocumentError(f"the {fallback.upper()} document is {kind}, not a mapping of keys") from None


def parse_as(text: str, fmt: str) -> Dict[str, Any]:
    """Read ``text`` as exactly ``fmt`` (``toml``, ``json`` or ``yaml``), no fallback."""
    document = {"toml": parse_toml, "json": parse_json}.get(fmt, parse_yaml)(text)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise DocumentError(f"the {fmt.upper()} document is not a mapping of keys")
    return document
