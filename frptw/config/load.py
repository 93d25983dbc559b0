"""Loading a configuration: file -> template -> INI or v1 document -> model -> validation.

This is frp 0.65's ``LoadClientConfig``/``LoadServerConfig`` followed by ``verify``'s
validation, so a file is accepted here exactly when ``frpc verify``/``frps verify`` accept it.
Every failure is one :class:`~frptw.errors.ConfigError` line naming the file, the section (INI)
or proxy/visitor, the key (spelled as the file spells it) and the rule.
"""

import os
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from frptw.config import legacy, legacy_tables
from frptw.config.documents import DocumentError, parse_as, parse_v1
from frptw.config.includes import IncludeError, include_files
from frptw.config.ini import IniFile, IniSyntaxError, looks_like_legacy_ini, parse_ini
from frptw.config.model_client import ClientConfig
from frptw.config.model_common import ValueSource
from frptw.config.model_server import ServerConfig
from frptw.config.problems import Problem
from frptw.config.v1 import Decoder, fields_by_key
from frptw.config.validate import check_value_source, validate_client, validate_server
from frptw.errors import ConfigError

AnyConfig = Union[ClientConfig, ServerConfig]
ROLES = ("frpc", "frps")
FORMATS = ("ini", "toml", "yaml", "json")
_EXTENSIONS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini"}


class _Document:
    """One parsed file: either an INI file or a v1 mapping, plus where it came from."""

    def __init__(self, source: str, fmt: str, ini: Optional[IniFile] = None, data: Optional[Dict[str, Any]] = None,
                 rendered: str = ""):
        self.source = source
        self.format = fmt
        self.ini = ini
        self.data = data if data is not None else {}
        #: The rendered INI text (frp appends included files to it before reading proxies).
        self.rendered = rendered
        #: Environment variables the template used but that are not set.
        self.missing_env: List[str] = []


def _line(source: str, message: str, location: str = "", line: int = 0) -> str:
    """``FILE [line N] [LOCATION]: MESSAGE`` on one line."""
    head = f"{source} line {line}" if line else source
    text = f"{head} {location}: {message}" if location else f"{head}: {message}"
    return " ".join(text.splitlines())


def _fail(source: str, message: str, line: int = 0) -> ConfigError:
    return ConfigError(_line(source, message, line=line))


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the file: {e.strerror or e}") from None
    return raw.decode("utf-8", errors="replace")


def _parse(text: str, fmt: Optional[str], source: str, env: Mapping[str, str], allow_ini: bool = True) -> _Document:
    """Detect the format as frp does (unless ``fmt`` forces one), render, parse.

    ``allow_ini=False`` skips INI detection: frp reads files included from a v1 file as v1 only.
    """
    if fmt not in (None, "auto") + FORMATS:
        raise ValueError(f"unknown configuration format {fmt!r}")
    missing: List[str] = []
    if fmt == "ini" or (fmt in (None, "auto") and allow_ini and looks_like_legacy_ini(text)):
        rendered = _render(text, source, env, False, missing)
        try:
            ini = parse_ini(rendered)
        except IniSyntaxError as e:
            raise _fail(source, f"INI syntax error: {e}", e.line) from None
        if "common" not in ini.sections:
            raise _fail(source, "not an frp INI file: there is no [common] section")
        document = _Document(source, "ini", ini=ini, rendered=rendered)
    else:
        rendered = _render(text, source, env, True, missing)
        hint = _EXTENSIONS.get(os.path.splitext(source)[1].lower(), "")
        try:
            data, detected = parse_v1(rendered, hint) if fmt in (None, "auto") else (parse_as(rendered, fmt), fmt)
        except DocumentError as e:
            raise _fail(source, *_explain(rendered, e)) from None
        document = _Document(source, detected, data=data)
    document.missing_env = missing
    return document


def _explain(text: str, error: DocumentError) -> Tuple[str, int]:
    """(message, line) for a file the v1 parsers refused; for an INI-looking file, why frp did
    not read it as INI."""
    if not re.search(r"^[ \t]*\[common\]", text, re.MULTILINE):
        try:
            sections = parse_ini(text).sections
        except IniSyntaxError:
            return str(error), error.line
        if len(sections) > 1:
            return ("this looks like INI but has no [common] section, which frp requires to read a file as INI; "
                    f"read as TOML/YAML/JSON instead, it fails: {error}"), 0
        return str(error), error.line
    try:
        parse_ini(text, allow_boolean_keys=False, strip_inline_comments=True)
    except IniSyntaxError as e:
        hint = " (frp does not read a key without '=' as INI; write KEY = true)" if "no '='" in str(e) else ""
        return f"INI syntax error: {e}{hint}", e.line
    return str(error), error.line


def _render(text: str, source: str, env: Mapping[str, str], v1: bool, missing: List[str]) -> str:
    """frp's Go-template pass.  A text without ``{{`` has no action, so it renders as itself:
    the template engine (a large module) is only imported for configs that use it."""
    if "{{" not in text:
        return text
    from frptw.config.template import TemplateError, render

    try:
        return render(text, env, with_range_functions=v1, missing=missing)
    except TemplateError as e:
        raise _fail(source, f"template error: {e}", e.line) from None


# ---------------------------------------------------------------------------------------------
# role detection

_CLIENT_ONLY_INI = {k for k, _, _ in legacy_tables.CLIENT_COMMON} - {k for k, _, _ in legacy_tables.SERVER_COMMON}
_SERVER_ONLY_INI = {k for k, _, _ in legacy_tables.SERVER_COMMON} - {k for k, _, _ in legacy_tables.CLIENT_COMMON}
_CLIENT_ONLY_V1 = set(fields_by_key(ClientConfig)) - set(fields_by_key(ServerConfig))
_SERVER_ONLY_V1 = set(fields_by_key(ServerConfig)) - set(fields_by_key(ClientConfig))


def _votes(document: _Document) -> Tuple[int, int]:
    if document.ini is not None:
        common = set(document.ini.sections["common"].keys)
        others = [n for n in document.ini.sections if n not in ("common", "DEFAULT")]
        client = len(common & _CLIENT_ONLY_INI) + sum(not n.startswith("plugin.") for n in others)
        server = len(common & _SERVER_ONLY_INI) + sum(n.startswith("plugin.") for n in others)
        return client, server
    keys = {k.lower() for k in document.data}
    return len(keys & _CLIENT_ONLY_V1), len(keys & _SERVER_ONLY_V1)


def _role_of(document: _Document) -> Tuple[str, Optional[str]]:
    """("frpc"|"frps", warning or None) from the keys used (then from the file name)."""
    client, server = _votes(document)
    if client != server:
        return ("frpc" if client > server else "frps"), None
    name = os.path.basename(document.source).lower()
    for role in ROLES:
        if role in name:
            return role, None
    return "frpc", "could not tell whether this is an frpc or frps configuration; assuming frpc (use --role)"


def detect_role(text: str, fmt: Optional[str] = None, source: str = "<string>", env: Optional[Mapping[str, str]] = None) -> str:
    """``"frpc"`` or ``"frps"``, from the settings the text uses (e.g. serverAddr vs bindPort)."""
    return _role_of(_parse(text, fmt, source, os.environ if env is None else env))[0]


# ---------------------------------------------------------------------------------------------
# building the model


class _Builder:
    """Turns a document into a validated config, translating problems into ConfigError."""

    #: Kind of the common section, for spelling its keys in INI terms.
    common_kind = ""

    def __init__(self, document: _Document, strict: bool, env: Mapping[str, str]):
        self.document = document
        self.strict = strict
        self.env = env
        self.warnings: List[str] = []

    def error(self, problem: Problem, source: Optional[str] = None, fmt: Optional[str] = None) -> ConfigError:
        """The one-line error for ``problem``."""
        return ConfigError(self.describe(problem, source, fmt))

    def describe(self, problem: Problem, source: Optional[str] = None, fmt: Optional[str] = None) -> str:
        """``problem`` located the way the file is written (INI section and key, or v1 path)."""
        fmt = fmt or self.document.format
        kind, name = problem.scope or (self.common_kind, "")
        key = problem.key
        if fmt == "ini":
            scope = "[common]" if not problem.scope else f"[plugin.{name}]" if kind == "plugin" else f"[{name}]"
            key = legacy_tables.ini_key(kind, key) or key
        elif name:
            scope = f'{"httpPlugins" if kind == "plugin" else kind} "{name}"'
        elif problem.index is not None:
            scope = f"{kind} #{problem.index + 1}"
        else:
            scope = ""
        location = " ".join(part for part in (scope, key) if part)
        return _line(source or self.document.source, problem.message, location)

    def note_missing(self, source: str, names: List[str]) -> None:
        for name in names:
            self.warnings.append(f"{source}: environment variable {name} is not set, so "
                                 f"{{{{ .Envs.{name} }}}} is rendered as <no value>")

    def decode(self, cls: type, data: Dict[str, Any], source: str, fmt: str) -> Any:
        decoder = Decoder(strict=self.strict, known_plugins=legacy_tables.PLUGIN_PARAMS if fmt == "ini" else None)
        try:
            config = decoder.decode(cls, data)
        except Problem as problem:
            raise self.error(problem, source, fmt) from None
        self.warnings.extend(f"{source}: {w}" for w in decoder.warnings)
        return config

    def resolve_token_source(self, auth: Any) -> None:
        """frp resolves ``auth.tokenSource`` while loading when the method is ``token``."""
        source: Optional[ValueSource] = auth.token_source
        if auth.method != "token" or source is None:
            return
        check_value_source(source, "auth.tokenSource")
        assert source.file is not None
        try:
            with open(source.file.path, encoding="utf-8", errors="replace") as f:
                auth.token = f.read().strip()
        except OSError as e:
            raise Problem(f"cannot read the token file {source.file.path}: {e.strerror or e}", "auth.tokenSource.file.path") from None
        auth.token_source = None

    def finish(self, config: AnyConfig, validate: Callable[[Any], List[Problem]]) -> AnyConfig:
        try:
            self.resolve_token_source(config.auth)
            self.warnings.extend(self.describe(w) for w in validate(config))
        except Problem as problem:
            raise self.error(problem) from None
        config.warnings = [" ".join(w.splitlines()) for w in self.warnings]
        config.source = self.document.source
        config.format = self.document.format
        return config


class _ClientBuilder(_Builder):
    common_kind = "client"

    def build(self) -> ClientConfig:
        if self.document.ini is not None:
            config = self.from_ini()
        else:
            config = self.decode(ClientConfig, self.document.data, self.document.source, self.document.format)
            for entry in config.includes:
                self.include_v1(config, entry)
        if config.start:
            config.proxies = [p for p in config.proxies if p.name in config.start]
            config.visitors = [v for v in config.visitors if v.name in config.start]
        return self.finish(config, validate_client)  # type: ignore[return-value]

    def include_v1(self, config: ClientConfig, entry: str) -> None:
        try:
            files = include_files(entry)
        except IncludeError as e:
            raise _fail(self.document.source, f"includes: {e}") from None
        for path in files:
            document = _parse(_read(path), None, path, self.env, allow_ini=False)
            self.note_missing(path, document.missing_env)
            included = self.decode(ClientConfig, document.data, path, document.format)
            config.proxies.extend(included.proxies)
            config.visitors.extend(included.visitors)

    def from_ini(self) -> ClientConfig:
        ini = self.document.ini
        assert ini is not None
        converter = legacy.Converter(self.warnings, self.document.source)
        try:
            data = converter.client_common(ini.sections["common"])
            ini = self.ini_with_includes(data.get("includes", []))
            legacy.expand_ranges(ini)
            proxies, visitors = [], []
            for section, role in legacy.entry_sections(ini, data.get("start", [])):
                kind = legacy.entry_type(section, role)
                if role == "server":
                    proxies.append(converter.proxy(section, kind))
                else:
                    visitors.append(converter.visitor(section, kind))
        except Problem as problem:
            raise self.error(problem) from None
        for name, line in ini.reopened:
            self.warnings.append(f"{self.document.source} [{name}] appears again at line {line}; "
                                 "INI merges repeated sections into one")
        data["proxies"], data["visitors"] = proxies, visitors
        return self.decode(ClientConfig, data, self.document.source, "ini")

    def ini_with_includes(self, entries: List[str]) -> IniFile:
        """frp appends the rendered text of every included file to the main file's text."""
        assert self.document.ini is not None
        if not entries:
            return self.document.ini
        texts = [self.document.rendered]
        for entry in entries:
            try:
                files = include_files(entry)
            except IncludeError as e:
                raise _fail(self.document.source, f"includes: {e}") from None
            for path in files:
                missing: List[str] = []
                texts.append(_render(_read(path), path, self.env, False, missing))
                self.note_missing(path, missing)
        try:
            return parse_ini("\n".join(texts) + "\n")
        except IniSyntaxError as e:
            raise _fail(self.document.source, f"INI syntax error in the file or its includes: {e} (line {e.line} of the combined text)") from None


class _ServerBuilder(_Builder):
    common_kind = "server"

    def build(self) -> ServerConfig:
        if self.document.ini is not None:
            converter = legacy.Converter(self.warnings, self.document.source)
            data = converter.server_common(self.document.ini.sections["common"])
            plugins = converter.http_plugins(self.document.ini)
            if plugins:
                data["httpPlugins"] = plugins
        else:
            data = self.document.data
        config = self.decode(ServerConfig, data, self.document.source, self.document.format)
        return self.finish(config, validate_server)  # type: ignore[return-value]


_BUILDERS = {"frpc": _ClientBuilder, "frps": _ServerBuilder}


def _build(text: str, fmt: Optional[str], source: str, role: Optional[str], strict: bool, env: Optional[Mapping[str, str]]) -> AnyConfig:
    if role not in (None,) + ROLES:
        raise ValueError(f"role must be 'frpc' or 'frps', not {role!r}")
    env = os.environ if env is None else env
    document = _parse(text, fmt, source, env)
    warning = None
    if role is None:
        role, warning = _role_of(document)
    builder = _BUILDERS[role](document, strict, env)
    builder.note_missing(source, document.missing_env)
    if warning:
        builder.warnings.append(f"{source}: {warning}")
    return builder.build()


def parse_client_config(text: str, fmt: Optional[str] = None, source: str = "<string>", strict: bool = True,
                        env: Optional[Mapping[str, str]] = None) -> ClientConfig:
    """An frpc configuration from ``text`` (``fmt``: ``ini``/``toml``/``yaml``/``json``, or None
    to detect as frp does).  ``env`` replaces ``os.environ`` for ``{{ .Envs.X }}``."""
    return _build(text, fmt, source, "frpc", strict, env)  # type: ignore[return-value]


def parse_server_config(text: str, fmt: Optional[str] = None, source: str = "<string>", strict: bool = True,
                        env: Optional[Mapping[str, str]] = None) -> ServerConfig:
    """An frps configuration from ``text``; see :func:`parse_client_config`."""
    return _build(text, fmt, source, "frps", strict, env)  # type: ignore[return-value]


def load_config(path: str, role: Optional[str] = None, strict: bool = True,
                env: Optional[Mapping[str, str]] = None) -> AnyConfig:
    """Load and validate ``path`` for ``role`` (``"frpc"``/``"frps"``; None = tell from the
    content).  The format is detected from the content, like frp (the extension is a hint)."""
    return _build(_read(path), None, path, role, strict, env)


def config_from_document(data: Dict[str, Any], role: str, source: str, strict: bool = True,
                         env: Optional[Mapping[str, str]] = None) -> AnyConfig:
    """A configuration from a v1 document already in memory (``frps``'s flags, ``frpc tcp``'s:
    :mod:`frptw.config.flags`), defaulted and validated exactly as a file with that content;
    ``source`` names it in errors."""
    if role not in ROLES:
        raise ValueError(f"role must be 'frpc' or 'frps', not {role!r}")
    document = _Document(source, "json", data=data)
    return _BUILDERS[role](document, strict, os.environ if env is None else env).build()


def load_client_config(path: str, strict: bool = True, env: Optional[Mapping[str, str]] = None) -> ClientConfig:
    """:func:`load_config` for frpc."""
    return load_config(path, "frpc", strict, env)  # type: ignore[return-value]


def load_server_config(path: str, strict: bool = True, env: Optional[Mapping[str, str]] = None) -> ServerConfig:
    """:func:`load_config` for frps."""
    return load_config(path, "frps", strict, env)  # type: ignore[return-value]


__all__ = [
    "load_config",
    "load_client_config",
    "load_server_config",
    "parse_client_config",
    "parse_server_config",
    "detect_role",
]
