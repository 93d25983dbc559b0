"""frp's legacy INI format, converted to a v1 document as frp 0.65 converts it.

The conversion is driven by tables (INI key -> v1 key path -> value kind), one per kind of
section, mirroring frp's ``legacy`` package and its ``Convert_*_To_v1`` functions:

* a value is read as go-ini reads it (:meth:`frptw.config.ini.Section.get`: inherited from a
  ``[parent]`` section, ``%(key)s`` expanded);
* an empty string keeps the default; a number or boolean that does not parse is silently
  ignored by frp (we keep the default too, and add a warning);
* ``meta_*``, ``header_*``, ``oidc_additional_*`` and ``plugin_*`` keys are collected by prefix;
* ``[range:NAME]`` sections expand into ``NAME_0``, ``NAME_1``... (0-based, one per port pair),
  ``[plugin.NAME]`` sections of frps become ``httpPlugins``.

Errors that frp reports while reading INI (unknown proxy type, bad role, bad bandwidth unit,
range problems...) raise :class:`~frptw.config.problems.Problem` scoped to the section.
"""

from typing import Any, Dict, List, Sequence, Tuple

from frptw.config.goconv import parse_ini_bool, parse_int
from frptw.config.ini import DEFAULT_SECTION, IniFile, Section, split_list
from frptw.config.legacy_tables import (
    BOOL,
    CLIENT_COMMON,
    FLAG_KEYS,
    LIST,
    PLUGIN_PARAMS,
    PLUGINS_WITH_HEADERS,
    POSITIVE_INT,
    PREFIXES,
    PROXY_BASE,
    PROXY_BY_TYPE,
    SERVER_COMMON,
    SERVER_INI_DEFAULTS,
    STR,
    UNCONVERTED_PLUGINS,
    VISITOR_BASE,
    VISITOR_BY_TYPE,
    Table,
)
from frptw.config.problems import Problem, quote
from frptw.config.proxies import PROXY_TYPES
from frptw.config.ranges import RangeError, parse_port_ranges, parse_range_numbers
from frptw.config.visitors import VISITOR_TYPES
from frptw.wire.auth import SCOPE_HEARTBEATS, SCOPE_NEW_WORK_CONNS


def set_path(document: Dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating the intermediate dicts."""
    *parents, last = path.split(".")
    for part in parents:
        document = document.setdefault(part, {})
    document[last] = value


class Converter:
    """Converts sections of one INI file; ``warnings`` collects what frp silently accepts."""

    def __init__(self, warnings: List[str], source: str):
        self.warnings = warnings
        self.source = source

    def _warn(self, section: Section, message: str) -> None:
        self.warnings.append(f"{self.source} [{section.name}] {message}")

    def read(self, section: Section, ini_key: str, kind: str) -> Any:
        """A typed value, or None when absent/empty/unparsable (frp then keeps the default)."""
        raw = section.get(ini_key)
        if raw is None or (raw == "" and kind != LIST):
            return None
        if kind == LIST:
            return split_list(raw)
        if kind == STR:
            if " #" in raw or " ;" in raw:
                self._warn(section, f"{ini_key}: value {quote(raw)} includes what looks like a comment; "
                           "INI values keep inline comments (put comments on their own line)")
            return raw
        try:
            value = parse_ini_bool(raw) if kind == BOOL else parse_int(raw, 0)
        except ValueError:
            what = "true or false" if kind == BOOL else "an integer"
            self._warn(section, f"{ini_key}: {quote(raw)} is not {what}; frp ignores it and uses the default")
            return None
        if kind == POSITIVE_INT and value <= 0:
            return None
        return value

    def apply(self, section: Section, table: Table, document: Dict[str, Any]) -> None:
        """Copy every key of ``table`` present in ``section`` into the v1 ``document``."""
        for ini_key, path, kind in table:
            value = self.read(section, ini_key, kind)
            if value is not None:
                set_path(document, path, value)

    def prefixed(self, section: Section, kinds: Sequence[str], document: Dict[str, Any]) -> None:
        """Collect ``meta_*``-style keys into maps (frp reads them raw, from this section only)."""
        for kind in kinds:
            for prefix, path in PREFIXES[kind].items():
                values = {k[len(prefix):]: v for k, v in section.own_items() if k.startswith(prefix)}
                if values:
                    set_path(document, path, values)

    def check_keys(self, section: Section, known: Sequence[str], prefixes: Sequence[str], what: str) -> None:
        """Warn about keys frp ignores (usually typos, or settings of the other program)."""
        for ini_key in section.keys:
            if ini_key not in known and not ini_key.startswith(tuple(prefixes)):
                self._warn(section, f"unknown key {ini_key!r} is ignored {what}")

    def scopes(self, section: Section) -> List[str]:
        """Authentication scopes from the two ``authenticate_*`` flags."""
        scopes = []
        for ini_key, scope in (("authenticate_heartbeats", SCOPE_HEARTBEATS), ("authenticate_new_work_conns", SCOPE_NEW_WORK_CONNS)):
            if self.read(section, ini_key, BOOL):
                scopes.append(scope)
        return scopes

    # -----------------------------------------------------------------------------------------

    def client_common(self, common: Section) -> Dict[str, Any]:
        """frpc's ``[common]`` as a v1 document (without proxies and visitors)."""
        document: Dict[str, Any] = {}
        self.apply(common, CLIENT_COMMON, document)
        self.prefixed(common, ["client"], document)
        scopes = self.scopes(common)
        if scopes:
            set_path(document, "auth.additionalScopes", scopes)
        known = [k for k, _, _ in CLIENT_COMMON] + list(FLAG_KEYS["client"])
        self.check_keys(common, known, list(PREFIXES["client"]), "by frpc")
        return document

    def server_common(self, common: Section) -> Dict[str, Any]:
        """frps's ``[common]`` as a v1 document (``[plugin.*]`` sections: :meth:`http_plugins`)."""
        document: Dict[str, Any] = {}
        for path, value in SERVER_INI_DEFAULTS.items():
            set_path(document, path, value)
        self.apply(common, SERVER_COMMON, document)
        scopes = self.scopes(common)
        if scopes:
            set_path(document, "auth.additionalScopes", scopes)
        if self.read(common, "dashboard_tls_mode", BOOL):
            tls = {}
            self.apply(common, [("dashboard_tls_cert_file", "certFile", STR), ("dashboard_tls_key_file", "keyFile", STR)], tls)
            set_path(document, "webServer.tls", tls)
            self.apply(common, [("pprof_enable", "webServer.pprofEnable", BOOL)], document)
        elif self.read(common, "pprof_enable", BOOL):
            self._warn(common, "pprof_enable is ignored by frp unless dashboard_tls_mode = true")
        allow = common.get("allow_ports")
        if allow:
            try:
                document["allowPorts"] = [{"start": a, "end": b} for a, b in parse_port_ranges(allow)]
            except RangeError as e:
                self._warn(common, f"allow_ports: {quote(allow)} is invalid ({e}); frp ignores it, so EVERY port is allowed")
        self.check_keys(common, [k for k, _, _ in SERVER_COMMON] + list(FLAG_KEYS["server"]), [], "by frps")
        return document

    def http_plugins(self, ini: IniFile) -> List[Dict[str, Any]]:
        """``[plugin.NAME]`` sections as v1 ``httpPlugins`` (a repeated NAME keeps the last)."""
        plugins: Dict[str, Dict[str, Any]] = {}
        for name, section in ini.sections.items():
            if not name.startswith("plugin."):
                continue
            plugin: Dict[str, Any] = {"name": name[len("plugin."):].strip()}
            self.apply(section, [("addr", "addr", STR), ("path", "path", STR), ("ops", "ops", LIST), ("tlsVerify", "tlsVerify", BOOL)], plugin)
            if "tls_verify" in section.keys:
                self._warn(section, "tls_verify is ignored since frp 0.52; the key is now tlsVerify")
            plugins[plugin["name"]] = plugin
        return list(plugins.values())

    def proxy(self, section: Section, proxy_type: str) -> Dict[str, Any]:
        """One proxy section as a v1 ``proxies`` entry."""
        document: Dict[str, Any] = {"name": section.name, "type": proxy_type}
        table = [*PROXY_BASE, *PROXY_BY_TYPE[proxy_type]]
        self.apply(section, table, document)
        kinds = ["proxy", "http"] if proxy_type == "http" else ["proxy"]
        self.prefixed(section, kinds, document)
        plugin = section.get("plugin")
        if plugin:
            document["plugin"] = self.plugin(section, plugin)
        known = [k for k, _, _ in table] + ["type", "role", "name", "plugin"]
        prefixes = [p for kind in kinds for p in PREFIXES[kind]] + ["plugin_"]
        self.check_keys(section, known, prefixes, f"for a {proxy_type} proxy")
        return document

    def plugin(self, section: Section, name: str) -> Dict[str, Any]:
        """v1 plugin options from ``plugin_*`` keys, for the plugins frp's INI converter knows."""
        params = dict(section.own_items())
        options: Dict[str, Any] = {"type": name}
        if name in PLUGIN_PARAMS:
            for ini_key, v1 in PLUGIN_PARAMS[name]:
                if params.get(ini_key):
                    options[v1] = params[ini_key]
            headers = {k[len("plugin_header_"):]: v for k, v in params.items() if k.startswith("plugin_header_") and len(k) > 14}
            if headers and name in PLUGINS_WITH_HEADERS:
                options["requestHeaders"] = {"set": headers}
        elif name in UNCONVERTED_PLUGINS:
            self._warn(section, f"plugin {name!r} cannot be configured in INI (frp 0.65 crashes when the proxy starts); use TOML")
        else:
            self._warn(section, f"plugin {quote(name)} is unknown: frp accepts the file but the proxy cannot start")
        return options

    def visitor(self, section: Section, visitor_type: str) -> Dict[str, Any]:
        """One ``role = visitor`` section as a v1 ``visitors`` entry."""
        document: Dict[str, Any] = {"name": section.name, "type": visitor_type}
        table = [*VISITOR_BASE, *VISITOR_BY_TYPE.get(visitor_type, [])]
        self.apply(section, table, document)
        self.check_keys(section, [k for k, _, _ in table] + ["type", "role", "name"], [], f"for a {visitor_type} visitor")
        return document


def expand_ranges(ini: IniFile) -> None:
    """Expand every ``[range:PREFIX]`` section into ``PREFIX_0``, ``PREFIX_1``..."""
    for name, section in list(ini.sections.items()):
        if not name.startswith("range:"):
            continue
        local, remote = section.get("local_port") or "", section.get("remote_port") or ""
        where = ("proxy", name)
        if not local or not remote:
            raise Problem("a range section needs both local_port and remote_port", "localPort" if not local else "remotePort", where)
        ports = []
        for text, key in ((local, "localPort"), (remote, "remotePort")):
            try:
                ports.append(parse_range_numbers(text))
            except RangeError as e:
                raise Problem(f"{quote(text)}: {e} (expected a list like 6000-6005,6007)", key, where) from None
        local_ports, remote_ports = ports
        if len(local_ports) != len(remote_ports):
            raise Problem(
                f"local_port lists {len(local_ports)} ports but remote_port lists {len(remote_ports)}; they must pair up",
                "", where,
            )
        prefix = name[len("range:"):].strip()
        for i, (local_port, remote_port) in enumerate(zip(local_ports, remote_ports)):
            target = ini.section(f"{prefix}_{i}", section.line)
            target.keys.update(section.keys)
            target.keys["local_port"] = str(local_port)
            target.keys["remote_port"] = str(remote_port)


def entry_sections(ini: IniFile, start: Sequence[str]) -> List[Tuple[Section, str]]:
    """(section, role) of every proxy/visitor section frpc would load, honouring ``start``."""
    out = []
    for name, section in ini.sections.items():
        if name in (DEFAULT_SECTION, "common") or name.startswith("range:"):
            continue
        if start and name not in start:
            continue
        role = section.get("role") or "server"
        if role not in ("server", "visitor"):
            raise Problem(f"must be server or visitor, got {quote(role)}", "role", ("proxy", name))
        out.append((section, role))
    return out


def entry_type(section: Section, role: str) -> str:
    """The proxy/visitor type of a section, with frp's INI rules (a proxy defaults to tcp)."""
    if role == "server":
        kind = section.get("type") or "tcp"
        if kind not in PROXY_TYPES:
            raise Problem(f"unknown proxy type {quote(kind)} (expected one of {', '.join(PROXY_TYPES)})", "type", ("proxy", section.name))
        return kind
    kind = section.get("type") or ""
    if kind not in VISITOR_TYPES:
        problem = "required for a visitor" if not kind else f"unknown visitor type {quote(kind)}"
        raise Problem(f"{problem} (one of {', '.join(VISITOR_TYPES)})", "type", ("visitor", section.name))
    return kind
