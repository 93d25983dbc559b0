"""Validation: frp 0.65's verdicts, with messages naming file, section or proxy, key and rule."""

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import parse_client_config, parse_server_config
from frptw.config.validate import annotation_key_problem
from frptw.errors import ConfigError


def error(parse, text: str, source: str) -> str:
    with SynchronousTestCase().assertRaises(ConfigError) as caught:
        parse(text, None, source, env={})
    message = str(caught.exception)
    assert "\n" not in message, message
    return message


def client_error(text: str, source: str = "frpc.toml") -> str:
    return error(parse_client_config, text, source)


def server_error(text: str, source: str = "frps.toml") -> str:
    return error(parse_server_config, text, source)


TCP = '[[proxies]]\nname = "ssh"\ntype = "tcp"\nlocalPort = 22\n'


class ClientCommonTests(SynchronousTestCase):
    def test_messages(self) -> None:
        cases = [
            ('auth.method = "x"', 'frpc.toml auth.method: "x" is not one of token, oidc'),
            ('auth.additionalScopes = ["Pings"]', 'frpc.toml auth.additionalScopes: "Pings" is not one of HeartBeats, NewWorkConns'),
            ('log.level = "loud"', 'frpc.toml log.level: "loud" is not one of trace, debug, info, warn, error'),
            ("webServer.port = 70000", "frpc.toml webServer.port: 70000 is not a port number (0..65535)"),
            ("webServer.tls = {}", "frpc.toml webServer.tls.certFile: required when the web server uses TLS"),
            ('transport.protocol = "auto"', 'frpc.toml transport.protocol: "auto" is not one of tcp, kcp, quic, websocket, wss'),
            ("transport.heartbeatInterval = 30\ntransport.heartbeatTimeout = 10",
             "frpc.toml transport.heartbeatTimeout: 10 is shorter than the heartbeat interval (30)"),
            ('auth.tokenSource = {type = "exec"}', "frpc.toml auth.tokenSource.type: unsupported value source type: exec (only 'file' is supported)"),
            ('auth.tokenSource = {type = "file", file = {}}', "frpc.toml auth.tokenSource.file.path: a file path is required"),
        ]
        for text, message in cases:
            self.assertEqual(client_error(text + "\n"), message)

    def test_ini_messages_use_ini_keys(self) -> None:
        self.assertEqual(client_error("[common]\nadmin_port = 70000\n", "frpc.ini"),
                         "frpc.ini [common] admin_port: 70000 is not a port number (0..65535)")
        self.assertEqual(client_error("[common]\nprotocol = auto\n", "frpc.ini"),
                         'frpc.ini [common] protocol: "auto" is not one of tcp, kcp, quic, websocket, wss')

    def test_heartbeat_default_interval_counts(self) -> None:
        """Without tcp_mux the interval defaults to 30, so a timeout of 10 is refused (as by frp)."""
        self.assertIn("heartbeat_timeout: 10 is shorter", client_error("[common]\ntcp_mux = false\nheartbeat_timeout = 10\n", "frpc.ini"))

    def test_tls_files_without_tls_are_a_warning(self) -> None:
        config = parse_client_config('transport.tls.enable = false\ntransport.tls.certFile = "c"\n', "toml", "f.toml", env={})
        self.assertIn("f.toml transport.tls.certFile: ignored because transport.tls.enable is false", config.warnings)

    def test_accepted_odd_values(self) -> None:
        """frp does not check these: serverPort range, oidc without a client id, unknown gates."""
        config = parse_client_config('serverPort = 70000\nauth.method = "oidc"\nfeatureGates = {New = true}\n', "toml", env={})
        self.assertEqual(config.server_port, 70000)
        self.assertTrue(any("unknown gate 'New'" in w for w in config.warnings))

    def test_virtual_net_is_refused(self) -> None:
        self.assertIn("virtualNet.address:", client_error('featureGates = {VirtualNet = true}\nvirtualNet.address = "10.0.0.1/24"\n'))


class ProxyTests(SynchronousTestCase):
    def test_messages(self) -> None:
        cases = [
            ("localPort = 70000", 'frpc.toml proxy "ssh" localPort: 70000 is not a port number (0..65535)'),
            ('transport.proxyProtocolVersion = "v3"',
             'frpc.toml proxy "ssh" transport.proxyProtocolVersion: "v3" is not one of "" (none), v1, v2'),
            ('transport.bandwidthLimitMode = "both"',
             'frpc.toml proxy "ssh" transport.bandwidthLimitMode: "both" is not one of client, server'),
            ('healthCheck.type = "udp"', 'frpc.toml proxy "ssh" healthCheck.type: "udp" is not one of "" (none), tcp, http'),
            ('healthCheck.type = "http"', 'frpc.toml proxy "ssh" healthCheck.path: required for an http health check'),
            ('plugin = {type = "unix_domain_socket"}', 'frpc.toml proxy "ssh" plugin.unixPath: required by the unix_domain_socket plugin'),
            ('annotations = {"a/b/c" = "x"}', 'frpc.toml proxy "ssh" annotations: key "a/b/c": must be NAME or PREFIX/NAME'),
        ]
        for text, message in cases:
            lines = TCP.replace("localPort = 22\n", "") if text.startswith("localPort") else TCP
            self.assertEqual(client_error(lines + text + "\n"), message)

    def test_name_is_required(self) -> None:
        self.assertEqual(client_error('[[proxies]]\ntype = "tcp"\n'), "frpc.toml proxy #1 name: a proxy needs a name")

    def test_domains(self) -> None:
        for kind in ("http", "https", "tcpmux"):
            extra = 'multiplexer = "httpconnect"\n' if kind == "tcpmux" else ""
            message = client_error(f'[[proxies]]\nname = "w"\ntype = "{kind}"\n{extra}')
            self.assertEqual(message, f'frpc.toml proxy "w" customDomains: {kind} proxies need customDomains or subdomain (or both)')
        self.assertEqual(client_error('[[proxies]]\nname = "m"\ntype = "tcpmux"\nsubdomain = "m"\n'),
                         'frpc.toml proxy "m" multiplexer: "" is not one of httpconnect')

    def test_plugin_replaces_local_port(self) -> None:
        """With a plugin frp does not check localPort at all."""
        config = parse_client_config(TCP.replace("22", "-1") + 'plugin = {type = "socks5"}\n', "toml", env={})
        self.assertEqual(config.proxies[0].local_port, -1)

    def test_ini_messages_name_the_section(self) -> None:
        self.assertEqual(client_error("[common]\n[ssh]\nlocal_port = 70000\n", "frpc.ini"),
                         "frpc.ini [ssh] local_port: 70000 is not a port number (0..65535)")
        self.assertEqual(client_error("[common]\n[ssh]\ntype = foo\n", "frpc.ini"),
                         'frpc.ini [ssh] type: unknown proxy type "foo" (expected one of tcp, udp, http, https, tcpmux, stcp, sudp, xtcp)')
        self.assertEqual(client_error("[common]\n[ssh]\nbandwidth_limit = 1GB\n", "frpc.ini"),
                         'frpc.ini [ssh] bandwidth_limit: "1GB": unit not supported, use a number followed by MB or KB (e.g. 1.5MB)')
        self.assertEqual(client_error("[common]\n[ssh]\nrole = client\n", "frpc.ini"),
                         'frpc.ini [ssh] role: must be server or visitor, got "client"')

    def test_annotation_keys(self) -> None:
        for key in ("a", "frp.io/desc", "Example.COM/My_Name-1", "x" * 63):
            self.assertIsNone(annotation_key_problem(key), key)
        for key in ("", "-a", "a-", "/a", "a/", "bad key", "a/b/c", "x" * 64, "under_score.com/a"):
            self.assertIsNotNone(annotation_key_problem(key), key)


class VisitorTests(SynchronousTestCase):
    def test_messages(self) -> None:
        base = '[[visitors]]\nname = "v"\ntype = "{}"\n'
        self.assertEqual(client_error(base.format("stcp") + "bindPort = 1\n"),
                         'frpc.toml visitor "v" serverName: required (the name of the proxy to visit)')
        self.assertEqual(client_error(base.format("stcp") + 'serverName = "s"\n'),
                         'frpc.toml visitor "v" bindPort: required (a local port, or -1 for no listener)')
        self.assertEqual(client_error(base.format("xtcp") + 'serverName = "s"\nbindPort = 1\nprotocol = "tcp"\n'),
                         'frpc.toml visitor "v" protocol: "tcp" is not one of kcp, quic')
        self.assertEqual(client_error(base.format("foo")),
                         'frpc.toml visitor "v" type: unknown visitor type "foo" (expected one of stcp, sudp, xtcp)')

    def test_ini_visitor_type(self) -> None:
        self.assertEqual(client_error("[common]\n[v]\nrole = visitor\n", "frpc.ini"),
                         "frpc.ini [v] type: required for a visitor (one of stcp, sudp, xtcp)")


class ServerTests(SynchronousTestCase):
    def test_ports(self) -> None:
        for key in ("bindPort", "kcpBindPort", "quicBindPort", "vhostHTTPPort", "vhostHTTPSPort", "tcpmuxHTTPConnectPort"):
            self.assertEqual(server_error(f"{key} = 70000\n"), f"frps.toml {key}: 70000 is not a port number (0..65535)")
        self.assertEqual(server_error("[common]\nkcp_bind_port = -1\n", "frps.ini"),
                         "frps.ini [common] kcp_bind_port: -1 is not a port number (0..65535)")

    def test_plugin_ops(self) -> None:
        self.assertEqual(server_error('[[httpPlugins]]\nname = "p"\nops = ["Login", "Foo"]\n'),
                         'frps.toml httpPlugins "p" ops: "Foo" is not one of Login, NewProxy, CloseProxy, Ping, NewWorkConn, NewUserConn')

    def test_dashboard_tls(self) -> None:
        self.assertEqual(server_error("[common]\ndashboard_tls_mode = true\ndashboard_tls_cert_file = c\n", "frps.ini"),
                         "frps.ini [common] dashboard_tls_key_file: required when the web server uses TLS")

    def test_token_source(self) -> None:
        self.assertIn("auth.tokenSource.file.path: cannot read the token file /nonexistent/t",
                      server_error('auth.tokenSource = {type = "file", file = {path = "/nonexistent/t"}}\n'))
        config = parse_server_config('auth.method = "oidc"\nauth.tokenSource = {type = "exec"}\n', "toml", env={})
        self.assertEqual(config.auth.method, "oidc")

    def test_not_checked_by_frp(self) -> None:
        config = parse_server_config("sshTunnelGateway.bindPort = 70000\nallowPorts = [{start = 9, end = 1}]\n", "toml", env={})
        self.assertEqual(config.ssh_tunnel_gateway.bind_port, 70000)
        self.assertTrue(any("range 9-1 is empty" in w for w in config.warnings))

    def test_ssh_tunnel_gateway_is_accepted_with_a_warning(self) -> None:
        """frp 0.65 serves an SSH gateway there; frptw has none, and says so when frps starts."""
        config = parse_server_config("sshTunnelGateway.bindPort = 2200\n", "toml", "frps.toml", env={})
        self.assertIn("frps.toml sshTunnelGateway.bindPort: frptw has no SSH tunnel gateway: nothing will listen "
                      "on this port (Go frps 0.65 serves one)", config.warnings)
        self.assertEqual(parse_server_config("bindPort = 7000\n", "toml", env={}).warnings, [])
