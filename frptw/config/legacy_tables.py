"""The tables that map frp's legacy INI keys onto v1 key paths (used by :mod:`legacy`).

One table per kind of section, mirroring frp 0.65's ``legacy`` structs and ``Convert_*_To_v1``
functions: ``(INI key, v1 key path, kind of value)``.  The reverse maps let messages spell a key
the way an INI file does.
"""

from typing import Dict, Optional, Sequence, Tuple

STR, INT, BOOL, LIST, POSITIVE_INT = "str", "int", "bool", "list", "positive int"

#: (INI key, v1 key path, kind).  Keys whose v1 home is special are handled in :mod:`legacy`.
Table = Sequence[Tuple[str, str, str]]

_AUTH_COMMON: Table = [
    ("authentication_method", "auth.method", STR),
    ("token", "auth.token", STR),
]
_LOG: Table = [
    ("log_file", "log.to", STR),
    ("log_level", "log.level", STR),
    ("log_max_days", "log.maxDays", INT),
    ("disable_log_color", "log.disablePrintColor", BOOL),
]
_QUIC: Table = [
    ("quic_keepalive_period", "transport.quic.keepalivePeriod", INT),
    ("quic_max_idle_timeout", "transport.quic.maxIdleTimeout", INT),
    ("quic_max_incoming_streams", "transport.quic.maxIncomingStreams", INT),
]
_TRANSPORT_COMMON: Table = [
    ("tcp_mux", "transport.tcpMux", BOOL),
    ("tcp_mux_keepalive_interval", "transport.tcpMuxKeepaliveInterval", INT),
    ("heartbeat_timeout", "transport.heartbeatTimeout", INT),
    ("tls_cert_file", "transport.tls.certFile", STR),
    ("tls_key_file", "transport.tls.keyFile", STR),
    ("tls_trusted_ca_file", "transport.tls.trustedCaFile", STR),
    ("udp_packet_size", "udpPacketSize", INT),
]

CLIENT_COMMON: Table = [
    *_AUTH_COMMON,
    *_LOG,
    *_QUIC,
    *_TRANSPORT_COMMON,
    ("server_addr", "serverAddr", STR),
    ("server_port", "serverPort", INT),
    ("nat_hole_stun_server", "natHoleStunServer", STR),
    ("dial_server_timeout", "transport.dialServerTimeout", INT),
    ("dial_server_keepalive", "transport.dialServerKeepalive", INT),
    ("connect_server_local_ip", "transport.connectServerLocalIP", STR),
    ("http_proxy", "transport.proxyURL", STR),
    ("admin_addr", "webServer.addr", STR),
    ("admin_port", "webServer.port", INT),
    ("admin_user", "webServer.user", STR),
    ("admin_pwd", "webServer.password", STR),
    ("assets_dir", "webServer.assetsDir", STR),
    ("pprof_enable", "webServer.pprofEnable", BOOL),
    ("pool_count", "transport.poolCount", INT),
    ("user", "user", STR),
    ("dns_server", "dnsServer", STR),
    ("login_fail_exit", "loginFailExit", BOOL),
    ("start", "start", LIST),
    ("protocol", "transport.protocol", STR),
    ("tls_enable", "transport.tls.enable", BOOL),
    ("tls_server_name", "transport.tls.serverName", STR),
    ("disable_custom_tls_first_byte", "transport.tls.disableCustomTLSFirstByte", BOOL),
    ("heartbeat_interval", "transport.heartbeatInterval", INT),
    ("includes", "includes", LIST),
    ("oidc_client_id", "auth.oidc.clientID", STR),
    ("oidc_client_secret", "auth.oidc.clientSecret", STR),
    ("oidc_audience", "auth.oidc.audience", STR),
    ("oidc_scope", "auth.oidc.scope", STR),
    ("oidc_token_endpoint_url", "auth.oidc.tokenEndpointURL", STR),
]

SERVER_COMMON: Table = [
    *_AUTH_COMMON,
    *_LOG,
    *_QUIC,
    *_TRANSPORT_COMMON,
    ("bind_addr", "bindAddr", STR),
    ("bind_port", "bindPort", INT),
    ("kcp_bind_port", "kcpBindPort", INT),
    ("quic_bind_port", "quicBindPort", INT),
    ("proxy_bind_addr", "proxyBindAddr", STR),
    ("vhost_http_port", "vhostHTTPPort", INT),
    ("vhost_https_port", "vhostHTTPSPort", INT),
    ("vhost_http_timeout", "vhostHTTPTimeout", INT),
    ("tcpmux_httpconnect_port", "tcpmuxHTTPConnectPort", INT),
    ("tcpmux_passthrough", "tcpmuxPassthrough", BOOL),
    ("dashboard_addr", "webServer.addr", STR),
    ("dashboard_port", "webServer.port", INT),
    ("dashboard_user", "webServer.user", STR),
    ("dashboard_pwd", "webServer.password", STR),
    ("assets_dir", "webServer.assetsDir", STR),
    ("enable_prometheus", "enablePrometheus", BOOL),
    ("detailed_errors_to_client", "detailedErrorsToClient", BOOL),
    ("oidc_issuer", "auth.oidc.issuer", STR),
    ("oidc_audience", "auth.oidc.audience", STR),
    ("oidc_skip_expiry_check", "auth.oidc.skipExpiryCheck", BOOL),
    ("oidc_skip_issuer_check", "auth.oidc.skipIssuerCheck", BOOL),
    ("user_conn_timeout", "userConnTimeout", INT),
    ("max_pool_count", "transport.maxPoolCount", INT),
    ("max_ports_per_client", "maxPortsPerClient", INT),
    ("tls_only", "transport.tls.force", BOOL),
    ("subdomain_host", "subDomainHost", STR),
    ("tcp_keepalive", "transport.tcpKeepalive", INT),
    ("custom_404_page", "custom404Page", STR),
    ("nat_hole_analysis_data_reserve_hours", "natholeAnalysisDataReserveHours", INT),
]

#: Defaults of frp's legacy INI structs that differ from the v1 defaults.
SERVER_INI_DEFAULTS = {"webServer.addr": "0.0.0.0"}

PROXY_BASE: Table = [
    ("local_ip", "localIP", STR),
    ("local_port", "localPort", INT),
    ("use_encryption", "transport.useEncryption", BOOL),
    ("use_compression", "transport.useCompression", BOOL),
    ("bandwidth_limit", "transport.bandwidthLimit", STR),
    ("bandwidth_limit_mode", "transport.bandwidthLimitMode", STR),
    ("proxy_protocol_version", "transport.proxyProtocolVersion", STR),
    ("group", "loadBalancer.group", STR),
    ("group_key", "loadBalancer.groupKey", STR),
    ("health_check_type", "healthCheck.type", STR),
    ("health_check_timeout_s", "healthCheck.timeoutSeconds", INT),
    ("health_check_max_failed", "healthCheck.maxFailed", INT),
    ("health_check_interval_s", "healthCheck.intervalSeconds", INT),
    ("health_check_url", "healthCheck.path", STR),
]
_DOMAINS: Table = [("custom_domains", "customDomains", LIST), ("subdomain", "subdomain", STR)]
_HTTP_AUTH: Table = [
    ("http_user", "httpUser", STR),
    ("http_pwd", "httpPassword", STR),
    ("route_by_http_user", "routeByHTTPUser", STR),
]
_SECRET: Table = [("sk", "secretKey", STR), ("allow_users", "allowUsers", LIST)]
PROXY_BY_TYPE: Dict[str, Table] = {
    "tcp": [("remote_port", "remotePort", INT)],
    "udp": [("remote_port", "remotePort", INT)],
    "http": [
        *_DOMAINS,
        *_HTTP_AUTH,
        ("locations", "locations", LIST),
        ("host_header_rewrite", "hostHeaderRewrite", STR),
    ],
    "https": _DOMAINS,
    "tcpmux": [*_DOMAINS, *_HTTP_AUTH, ("multiplexer", "multiplexer", STR)],
    "stcp": _SECRET,
    "sudp": _SECRET,
    "xtcp": _SECRET,
}

VISITOR_BASE: Table = [
    ("use_encryption", "transport.useEncryption", BOOL),
    ("use_compression", "transport.useCompression", BOOL),
    ("sk", "secretKey", STR),
    ("server_user", "serverUser", STR),
    ("server_name", "serverName", STR),
    ("bind_addr", "bindAddr", STR),
    ("bind_port", "bindPort", INT),
]
VISITOR_BY_TYPE: Dict[str, Table] = {
    "xtcp": [
        ("protocol", "protocol", STR),
        ("keep_tunnel_open", "keepTunnelOpen", BOOL),
        ("max_retries_an_hour", "maxRetriesAnHour", POSITIVE_INT),
        ("min_retry_interval", "minRetryInterval", POSITIVE_INT),
        ("fallback_to", "fallbackTo", STR),
        ("fallback_timeout_ms", "fallbackTimeoutMs", POSITIVE_INT),
    ],
}

_HEADER_REWRITE = ("plugin_host_header_rewrite", "hostHeaderRewrite")
_CERTS = (("plugin_crt_path", "crtPath"), ("plugin_key_path", "keyPath"))
#: INI plugin parameters per plugin (all strings); ``plugin_header_*`` goes to requestHeaders.
PLUGIN_PARAMS: Dict[str, Sequence[Tuple[str, str]]] = {
    "http2https": [("plugin_local_addr", "localAddr"), _HEADER_REWRITE],
    "http_proxy": [("plugin_http_user", "httpUser"), ("plugin_http_passwd", "httpPassword")],
    "https2http": [("plugin_local_addr", "localAddr"), _HEADER_REWRITE, *_CERTS],
    "https2https": [("plugin_local_addr", "localAddr"), _HEADER_REWRITE, *_CERTS],
    "socks5": [("plugin_user", "username"), ("plugin_passwd", "password")],
    "static_file": [
        ("plugin_local_path", "localPath"),
        ("plugin_strip_prefix", "stripPrefix"),
        ("plugin_http_user", "httpUser"),
        ("plugin_http_passwd", "httpPassword"),
    ],
    "unix_domain_socket": [("plugin_unix_path", "unixPath")],
}
PLUGINS_WITH_HEADERS = ("http2https", "https2http", "https2https")
#: Plugins that exist in v1 but that frp 0.65's INI converter leaves without options.
UNCONVERTED_PLUGINS = ("http2http", "tls2raw", "virtual_net")

#: Keys frp reads by prefix, per kind of section: prefix -> v1 map path.
PREFIXES: Dict[str, Dict[str, str]] = {
    "client": {"meta_": "metadatas", "oidc_additional_": "auth.oidc.additionalEndpointParams"},
    "proxy": {"meta_": "metadatas"},
    "http": {"header_": "requestHeaders.set"},
}
FLAG_KEYS = {
    "client": ("authenticate_heartbeats", "authenticate_new_work_conns", "log_way"),
    "server": (
        "authenticate_heartbeats", "authenticate_new_work_conns", "log_way", "allow_ports",
        "dashboard_tls_mode", "dashboard_tls_cert_file", "dashboard_tls_key_file", "pprof_enable",
    ),
}


def _reverse(*tables: Table) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for table in tables:
        for ini_key, path, _ in table:
            out.setdefault(path, ini_key)
    return out


_SCOPES = {"auth.additionalScopes": "authenticate_heartbeats"}
#: v1 key path -> INI key, per kind of section, to name keys in messages the way the file does.
INI_KEYS: Dict[str, Dict[str, str]] = {
    "client": {**_reverse(CLIENT_COMMON), **_SCOPES},
    "server": {
        **_reverse(SERVER_COMMON),
        **_SCOPES,
        "webServer.tls.certFile": "dashboard_tls_cert_file",
        "webServer.tls.keyFile": "dashboard_tls_key_file",
    },
    "proxy": {
        **_reverse(PROXY_BASE, *PROXY_BY_TYPE.values()),
        "plugin.type": "plugin",
        **{f"plugin.{v1}": ini for params in PLUGIN_PARAMS.values() for ini, v1 in params},
    },
    "visitor": _reverse(VISITOR_BASE, *VISITOR_BY_TYPE.values()),
}


def ini_key(kind: str, path: str) -> Optional[str]:
    """The INI spelling of a v1 key path in a section of ``kind``, if INI has one."""
    return INI_KEYS.get(kind, {}).get(path)
