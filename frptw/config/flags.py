"""frp 0.65's command-line configuration: ``frps`` flags and ``frpc``'s single-proxy commands.

``frps -t 123 -p 7000 --vhost-http-port 8080`` runs a server with no file (frps reads its flags
only when ``-c`` is not given), and ``frpc tcp -s 127.0.0.1 -P 7000 -t 123 -u alice -l 22 -r
6000 -n ssh`` a client with that one proxy (``frpc stcp visitor ...`` with one visitor).  Each
command line becomes the v1 document a file would hold, with frp's flag defaults written in (a
few differ from a file's: ``-s`` is 127.0.0.1 where a file's ``serverAddr`` is 0.0.0.0, frps's
dashboard listens on 0.0.0.0 (a file's on 127.0.0.1) with user and password ``admin``, and
``--proxy-bind-addr`` stays 0.0.0.0 whatever ``--bind-addr`` says), and then goes through the same loading and
validation as a file (:func:`frptw.config.load.config_from_document`).

frp 0.65's ``--dashboard-tls-mode VALUE`` is taken and, as in frp 0.65 (its flag ignores the
value it is given), never turns the dashboard's TLS on; its certificate flags are taken with it.
"""

from typing import Any, Dict, List, Sequence, Tuple

from frptw.config.flagparse import BOOL, INT, LIST, MAP, STRING, Flag, FlagError, FlagSet

__all__ = [
    "FlagError", "PROXY_TYPES", "VISITOR_TYPES", "SERVER_FLAGS", "CLIENT_ROOT_FLAGS",
    "server_document", "client_command", "command_flags",
]

#: ``frpc TYPE`` commands, and the types that also have ``frpc TYPE visitor``.
PROXY_TYPES = ("tcp", "udp", "tcpmux", "http", "https", "stcp", "sudp", "xtcp")
VISITOR_TYPES = ("stcp", "sudp", "xtcp")

_LOG = (
    Flag("log-file", None, STRING, "log.to", "console", "log file"),
    Flag("log-level", None, STRING, "log.level", "info", "log level"),
    Flag("log-max-days", None, INT, "log.maxDays", 3, "log max days"),
    Flag("disable-log-color", None, BOOL, "log.disablePrintColor", False, "disable log color in console"),
)
#: Flags frp takes on every command of the program and that configure nothing here.
_GLOBAL = (
    Flag("config", "c", STRING, "", None, "config file"),
    Flag("config-dir", None, STRING, "", None, "frpc: one frpc per file of the directory (not in frptw)"),
    Flag("strict-config", None, BOOL, "", True, "reject unknown keys in TOML/YAML/JSON"),
    Flag("no-strict-config", None, BOOL, "", False, "ignore unknown keys in TOML/YAML/JSON (frptw)"),
    Flag("version", "v", BOOL, "", False, "version"),
    Flag("help", "h", BOOL, "", False, "help"),
)

SERVER_FLAGS = FlagSet(_GLOBAL + (
    Flag("bind-addr", None, STRING, "bindAddr", "0.0.0.0", "bind address"),
    Flag("bind-port", "p", INT, "bindPort", 7000, "bind port"),
    Flag("kcp-bind-port", None, INT, "kcpBindPort", 0, "kcp bind udp port"),
    Flag("quic-bind-port", None, INT, "quicBindPort", 0, "quic bind udp port"),
    Flag("proxy-bind-addr", None, STRING, "proxyBindAddr", "0.0.0.0", "proxy bind address"),
    Flag("vhost-http-port", None, INT, "vhostHTTPPort", 0, "vhost http port"),
    Flag("vhost-https-port", None, INT, "vhostHTTPSPort", 0, "vhost https port"),
    Flag("vhost-http-timeout", None, INT, "vhostHTTPTimeout", 60, "vhost http response header timeout"),
    Flag("dashboard-addr", None, STRING, "webServer.addr", "0.0.0.0", "dashboard address"),
    Flag("dashboard-port", None, INT, "webServer.port", 0, "dashboard port"),
    Flag("dashboard-user", None, STRING, "webServer.user", "admin", "dashboard user"),
    Flag("dashboard-pwd", None, STRING, "webServer.password", "admin", "dashboard password"),
    Flag("enable-prometheus", None, BOOL, "enablePrometheus", False, "enable prometheus dashboard"),
) + _LOG + (
    Flag("token", "t", STRING, "auth.token", "", "auth token"),
    Flag("subdomain-host", None, STRING, "subDomainHost", "", "subdomain host"),
    Flag("allow-ports", None, STRING, "allowPorts", None, "allow ports"),
    Flag("max-ports-per-client", None, INT, "maxPortsPerClient", 0, "max ports per client"),
    Flag("tls-only", None, BOOL, "transport.tls.force", False, "frps tls only"),
    Flag("dashboard-tls-cert-file", None, STRING, "", None, "dashboard tls cert file"),
    Flag("dashboard-tls-key-file", None, STRING, "", None, "dashboard tls key file"),
    # A value flag in frp 0.65 (``--dashboard-tls-mode true``), whose value is then ignored.
    Flag("dashboard-tls-mode", None, STRING, "", None, "if enable dashboard tls mode (no effect, as frp 0.65)"),
))

#: ``frpc``'s own flags, before a command name.
CLIENT_ROOT_FLAGS = FlagSet(_GLOBAL)

_CLIENT_COMMON = _GLOBAL + (
    Flag("server-addr", "s", STRING, "serverAddr", "127.0.0.1", "frp server's address"),
    Flag("server-port", "P", INT, "serverPort", 7000, "frp server's port"),
    Flag("protocol", "p", STRING, "transport.protocol", "tcp", "tcp, kcp, quic, websocket or wss"),
) + _LOG + (
    Flag("tls-server-name", None, STRING, "transport.tls.serverName", "", "custom server name of the tls certificate"),
    Flag("dns-server", None, STRING, "dnsServer", "", "dns server instead of the system's"),
    Flag("tls-enable", None, BOOL, "transport.tls.enable", True, "enable frpc tls"),
    Flag("user", "u", STRING, "user", "", "user"),
    Flag("token", "t", STRING, "auth.token", "", "auth token"),
)

_PROXY_BASE = (
    Flag("proxy-name", "n", STRING, "name", "", "proxy name"),
    Flag("metadatas", None, MAP, "metadatas", None, "metadata key-value pairs (key1=value1,key2=value2)"),
    Flag("annotations", None, MAP, "annotations", None, "annotation key-value pairs (key1=value1,key2=value2)"),
    Flag("local-ip", "i", STRING, "localIP", "127.0.0.1", "local ip"),
    Flag("local-port", "l", INT, "localPort", 0, "local port"),
    Flag("ue", None, BOOL, "transport.useEncryption", False, "use encryption"),
    Flag("uc", None, BOOL, "transport.useCompression", False, "use compression"),
    Flag("bandwidth-limit-mode", None, STRING, "transport.bandwidthLimitMode", "client", "bandwidth limit mode"),
    Flag("bandwidth-limit", None, STRING, "transport.bandwidthLimit", None, "bandwidth limit (e.g. 100KB or 1MB)"),
)
_REMOTE_PORT = (Flag("remote-port", "r", INT, "remotePort", 0, "remote port"),)
_DOMAINS = (
    Flag("custom-domain", "d", LIST, "customDomains", [], "custom domains"),
    Flag("sd", None, STRING, "subdomain", "", "sub domain"),
)
_HTTP_AUTH = (
    Flag("http-user", None, STRING, "httpUser", "", "http auth user"),
    Flag("http-pwd", None, STRING, "httpPassword", "", "http auth password"),
)
_SECRET = (
    Flag("sk", None, STRING, "secretKey", "", "secret key"),
    Flag("allow-users", None, LIST, "allowUsers", [], "allow visitor users"),
)
_PROXY_FLAGS = {
    "tcp": _REMOTE_PORT,
    "udp": _REMOTE_PORT,
    "http": _DOMAINS + (Flag("locations", None, LIST, "locations", [], "locations"),) + _HTTP_AUTH + (
        Flag("host-header-rewrite", None, STRING, "hostHeaderRewrite", "", "host header rewrite"),),
    "https": _DOMAINS,
    "tcpmux": _DOMAINS + (Flag("mux", None, STRING, "multiplexer", "", "multiplexer"),) + _HTTP_AUTH,
    "stcp": _SECRET,
    "sudp": _SECRET,
    "xtcp": _SECRET,
}
_VISITOR = (
    Flag("visitor-name", "n", STRING, "name", "", "visitor name"),
    Flag("ue", None, BOOL, "transport.useEncryption", False, "use encryption"),
    Flag("uc", None, BOOL, "transport.useCompression", False, "use compression"),
    Flag("sk", None, STRING, "secretKey", "", "secret key"),
    Flag("server-name", None, STRING, "serverName", "", "server name"),
    Flag("server-user", None, STRING, "serverUser", "", "server user"),
    Flag("bind-addr", None, STRING, "bindAddr", "", "bind addr"),
    Flag("bind-port", None, INT, "bindPort", 0, "bind port"),
)


def command_flags(kind: str, visitor: bool = False) -> FlagSet:
    """The flags of ``frpc KIND`` (or ``frpc KIND visitor``)."""
    return FlagSet(_CLIENT_COMMON + (_VISITOR if visitor else _PROXY_BASE + _PROXY_FLAGS[kind]))


def _put(document: Dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        document = document.setdefault(part, {})
    document[last] = value


def _document(flags: Sequence[Flag], given: Dict[str, Any]) -> Dict[str, Any]:
    """What ``flags`` write into a v1 document: each given value, else the flag's Go default."""
    document: Dict[str, Any] = {}
    for flag in flags:
        value = given.get(flag.name, flag.default)
        if flag.key and value is not None:
            _put(document, flag.key, value)
    return document


def _ports_ranges(text: str) -> List[Dict[str, int]]:
    """frp's ``1000-2000,3001`` as v1 ``allowPorts`` entries."""
    ranges: List[Dict[str, int]] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            ranges.append({"start": int(low), "end": int(high)} if dash else {"single": int(low)})
        except ValueError:
            raise FlagError(f'invalid argument "{text}" for "--allow-ports" flag: {part!r} is not a port '
                            "or a range of ports") from None
    return ranges


def server_document(given: Dict[str, Any]) -> Dict[str, Any]:
    """The frps configuration the flags ``given`` (from :data:`SERVER_FLAGS`) describe."""
    given = dict(given)
    allow = given.pop("allow-ports", None)
    document = _document(SERVER_FLAGS.flags, given)
    if allow:
        document["allowPorts"] = _ports_ranges(allow)
    return document


def client_command(args: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``frpc KIND [visitor] FLAGS...`` (``args`` from the command's name on): the v1 document
    of that one-proxy (or one-visitor) frpc, and the flags as given."""
    kind, *rest = args
    if kind not in PROXY_TYPES:
        raise FlagError(f'unknown command "{kind}" for "frpc"')
    visitor = bool(rest) and rest[0] == "visitor" and kind in VISITOR_TYPES
    flagset = command_flags(kind, visitor)
    given, extra = flagset.parse(rest[1:] if visitor else rest)
    if extra:
        raise FlagError(f'unexpected argument "{extra[0]}" for "frpc {kind}{" visitor" if visitor else ""}"')
    common = _document(_CLIENT_COMMON, given)
    entry = _document(flagset.flags[len(_CLIENT_COMMON):], given)
    entry["type"] = kind
    common["visitors" if visitor else "proxies"] = [entry]
    return common, given
