"""The configuration model: frp's defaults, NewProxy fields, wire names."""

import json
import os
from typing import Optional

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import (
    PROXY_TYPES,
    VISITOR_TYPES,
    ClientConfig,
    ClientTransportConfig,
    HTTPProxyConfig,
    HTTPSProxyConfig,
    ServerConfig,
    ServerTransportConfig,
    STCPProxyConfig,
    STCPVisitorConfig,
    SUDPProxyConfig,
    SUDPVisitorConfig,
    TCPMuxProxyConfig,
    TCPProxyConfig,
    UDPProxyConfig,
    XTCPProxyConfig,
    XTCPVisitorConfig,
    parse_client_config,
    parse_server_config,
    wire_name,
)


class ClientDefaultsTests(SynchronousTestCase):
    def test_common(self) -> None:
        c = ClientConfig()
        self.assertEqual((c.server_addr, c.server_port, c.user), ("0.0.0.0", 7000, ""))
        self.assertTrue(c.login_fail_exit)
        self.assertEqual(c.udp_packet_size, 1500)
        self.assertEqual(c.nat_hole_stun_server, "stun.easyvoip.com:3478")
        self.assertEqual((c.auth.method, c.auth.token, c.auth.additional_scopes), ("token", "", []))
        self.assertEqual((c.log.to, c.log.level, c.log.max_days), ("console", "info", 3))
        self.assertEqual((c.web_server.addr, c.web_server.port), ("127.0.0.1", 0))

    def test_transport(self) -> None:
        t = ClientTransportConfig()
        self.assertEqual((t.protocol, t.pool_count, t.tcp_mux, t.tcp_mux_keepalive_interval), ("tcp", 1, True, 30))
        self.assertEqual((t.dial_server_timeout, t.dial_server_keepalive), (10, 7200))
        self.assertEqual((t.tls.enable, t.tls.disable_custom_tls_first_byte), (True, True))
        self.assertEqual((t.quic.keepalive_period, t.quic.max_idle_timeout, t.quic.max_incoming_streams), (10, 30, 100000))

    def test_heartbeat_depends_on_tcp_mux(self) -> None:
        """With yamux keep-alives, application heartbeats are off (-1); without, 30 s / 90 s."""
        self.assertEqual((ClientTransportConfig().heartbeat_interval, ClientTransportConfig().heartbeat_timeout), (-1, -1))
        plain = ClientTransportConfig(tcp_mux=False)
        self.assertEqual((plain.heartbeat_interval, plain.heartbeat_timeout), (30, 90))
        self.assertEqual(ServerTransportConfig().heartbeat_timeout, -1)
        self.assertEqual(ServerTransportConfig(tcp_mux=False).heartbeat_timeout, 90)

    def test_zero_means_default(self) -> None:
        """As in frp, writing 0 for these options is the same as leaving them out."""
        c = parse_client_config("serverPort = 0\nudpPacketSize = 0\ntransport.poolCount = 0\n", "toml", env={})
        self.assertEqual((c.server_port, c.udp_packet_size, c.transport.pool_count), (7000, 1500, 1))

    def test_http_proxy_env_is_the_default_proxy_url(self) -> None:
        previous = os.environ.get("http_proxy")
        os.environ["http_proxy"] = "http://proxy.test:3128"
        self.addCleanup(_restore_env, "http_proxy", previous)
        self.assertEqual(ClientTransportConfig().proxy_url, "http://proxy.test:3128")
        self.assertEqual(ClientTransportConfig(proxy_url="socks5://other:1080").proxy_url, "socks5://other:1080")


def _restore_env(name: str, value: Optional[str]) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class ServerDefaultsTests(SynchronousTestCase):
    def test_common(self) -> None:
        s = ServerConfig()
        self.assertEqual((s.bind_addr, s.bind_port, s.proxy_bind_addr), ("0.0.0.0", 7000, "0.0.0.0"))
        self.assertEqual((s.vhost_http_port, s.vhost_https_port, s.vhost_http_timeout), (0, 0, 60))
        self.assertEqual((s.user_conn_timeout, s.udp_packet_size, s.max_ports_per_client), (10, 1500, 0))
        self.assertTrue(s.detailed_errors_to_client)
        self.assertEqual(s.nathole_analysis_data_reserve_hours, 168)
        self.assertEqual(s.ssh_tunnel_gateway.auto_gen_private_key_path, "./.autogen_ssh_key")
        t = s.transport
        self.assertEqual((t.tcp_mux, t.tcp_mux_keepalive_interval, t.tcp_keepalive, t.max_pool_count), (True, 30, 7200, 5))
        self.assertFalse(t.tls.force)

    def test_proxy_bind_addr_follows_bind_addr(self) -> None:
        self.assertEqual(ServerConfig(bind_addr="127.0.0.1").proxy_bind_addr, "127.0.0.1")

    def test_trusted_ca_forces_tls(self) -> None:
        s = parse_server_config('transport.tls.trustedCaFile = "ca.crt"\n', "toml", env={})
        self.assertTrue(s.transport.tls.force)

    def test_port_allowed(self) -> None:
        s = ServerConfig(allow_ports=[(2000, 3000), (3001, 3001)])
        self.assertEqual([s.port_allowed(p) for p in (1999, 2000, 3000, 3001, 3002)], [False, True, True, True, False])
        self.assertTrue(ServerConfig().port_allowed(1))


class ProxyDefaultsTests(SynchronousTestCase):
    def test_every_proxy_type(self) -> None:
        expected = {
            "tcp": TCPProxyConfig,
            "udp": UDPProxyConfig,
            "http": HTTPProxyConfig,
            "https": HTTPSProxyConfig,
            "tcpmux": TCPMuxProxyConfig,
            "stcp": STCPProxyConfig,
            "sudp": SUDPProxyConfig,
            "xtcp": XTCPProxyConfig,
        }
        self.assertEqual(PROXY_TYPES, expected)
        for kind, cls in expected.items():
            p = cls(name="p")
            self.assertEqual(p.type, kind)
            self.assertEqual((p.local_ip, p.local_port, p.plugin), ("127.0.0.1", 0, None))
            self.assertEqual(p.transport.bandwidth_limit_mode, "client")
            self.assertEqual((p.transport.bandwidth_limit, p.transport.proxy_protocol_version), ("", ""))
            self.assertFalse(p.transport.use_encryption or p.transport.use_compression)
            self.assertEqual((p.health_check.type, p.health_check.timeout_seconds), ("", 3))
            self.assertEqual((p.health_check.max_failed, p.health_check.interval_seconds), (1, 10))
            self.assertEqual((p.load_balancer.group, p.load_balancer.group_key), ("", ""))
            self.assertEqual((p.metadatas, p.annotations), ({}, {}))

    def test_type_specific_defaults(self) -> None:
        self.assertEqual(TCPProxyConfig().remote_port, 0)
        self.assertEqual(UDPProxyConfig().remote_port, 0)
        http = HTTPProxyConfig()
        self.assertEqual((http.custom_domains, http.subdomain, http.locations, http.request_headers.set), ([], "", [], {}))
        self.assertEqual(TCPMuxProxyConfig().multiplexer, "")
        self.assertEqual((STCPProxyConfig().secret_key, STCPProxyConfig().allow_users), ("", []))
        self.assertIsNone(XTCPProxyConfig().nat_traversal)

    def test_every_visitor_type(self) -> None:
        self.assertEqual(VISITOR_TYPES, {"stcp": STCPVisitorConfig, "sudp": SUDPVisitorConfig, "xtcp": XTCPVisitorConfig})
        for kind, cls in VISITOR_TYPES.items():
            v = cls(name="v")
            self.assertEqual((v.type, v.bind_addr, v.bind_port, v.server_user), (kind, "127.0.0.1", 0, ""))
        x = XTCPVisitorConfig()
        self.assertEqual((x.protocol, x.max_retries_an_hour, x.min_retry_interval, x.fallback_timeout_ms), ("quic", 8, 90, 1000))
        self.assertFalse(x.keep_tunnel_open)

    def test_health_check_non_positive_means_default(self) -> None:
        c = parse_client_config(
            '[[proxies]]\nname = "a"\ntype = "tcp"\nlocalPort = 1\nhealthCheck = {type = "tcp", timeoutSeconds = -5}\n',
            "toml",
            env={},
        )
        self.assertEqual(c.proxies[0].health_check.timeout_seconds, 3)


#: Proxies of the NewProxy capture in wire-protocol.md section 5.8 (real frpc 0.65, user u1).
_CAPTURE_CONFIG = """
user = "u1"
[[proxies]]
name = "s"
type = "stcp"
secretKey = "sk"
allowUsers = ["*"]
localPort = 22
[[proxies]]
name = "web"
type = "http"
localPort = 80
transport = {useEncryption = true, useCompression = true, bandwidthLimit = "1MB", bandwidthLimitMode = "server", proxyProtocolVersion = "v2"}
loadBalancer = {group = "g", groupKey = "gk"}
metadatas = {m = "n"}
annotations = {ann = "x"}
customDomains = ["a.test"]
subdomain = "sub"
locations = ["/", "/api"]
httpUser = "hu"
httpPassword = "hp"
hostHeaderRewrite = "x.local"
requestHeaders.set = {"X-A" = "1"}
responseHeaders.set = {"X-B" = "2"}
routeByHTTPUser = "hu"
[[proxies]]
name = "mux"
type = "tcpmux"
customDomains = ["m.test"]
multiplexer = "httpconnect"
localPort = 80
[[proxies]]
name = "u"
type = "udp"
localPort = 53
remotePort = 0
"""

_CAPTURED = [
    '{"proxy_name":"u1.s","proxy_type":"stcp","sk":"sk","allow_users":["*"]}',
    '{"proxy_name":"u1.web","proxy_type":"http","use_encryption":true,"use_compression":true,"bandwidth_limit":"1MB",'
    '"bandwidth_limit_mode":"server","group":"g","group_key":"gk","metas":{"m":"n"},"annotations":{"ann":"x"},'
    '"custom_domains":["a.test"],"subdomain":"sub","locations":["/","/api"],"http_user":"hu","http_pwd":"hp",'
    '"host_header_rewrite":"x.local","headers":{"X-A":"1"},"response_headers":{"X-B":"2"},"route_by_http_user":"hu"}',
    '{"proxy_name":"u1.mux","proxy_type":"tcpmux","custom_domains":["m.test"],"multiplexer":"httpconnect"}',
    '{"proxy_name":"u1.u","proxy_type":"udp"}',
]


class NewProxyFieldsTests(SynchronousTestCase):
    def test_matches_real_frpc_captures(self) -> None:
        """Byte for byte (key order included) what frpc 0.65 sent for the same configuration."""
        config = parse_client_config(_CAPTURE_CONFIG, "toml", env={})
        for proxy, captured in zip(config.proxies, _CAPTURED):
            message = {"proxy_name": wire_name(config.user, proxy.name), **proxy.to_new_proxy_fields()}
            self.assertEqual(json.dumps(message, separators=(",", ":")), captured)

    def test_tcp_remote_port_and_omitempty(self) -> None:
        fields = TCPProxyConfig(name="ssh", local_port=22, remote_port=6000).to_new_proxy_fields()
        self.assertEqual(fields, {"proxy_type": "tcp", "remote_port": 6000})

    def test_fields_are_copies(self) -> None:
        proxy = STCPProxyConfig(name="s", allow_users=["bob"])
        proxy.to_new_proxy_fields()["allow_users"].append("eve")
        self.assertEqual(proxy.allow_users, ["bob"])


class WireNameTests(SynchronousTestCase):
    def test_user_prefix(self) -> None:
        self.assertEqual(wire_name("u1", "web"), "u1.web")
        self.assertEqual(wire_name("", "web"), "web")

    def test_visitor_target(self) -> None:
        self.assertEqual(STCPVisitorConfig(server_name="secret").target_wire_name("alice"), "alice.secret")
        visitor = STCPVisitorConfig(server_name="secret", server_user="bob")
        self.assertEqual(visitor.target_wire_name("alice"), "bob.secret")
