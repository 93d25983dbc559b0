"""The legacy INI format: go-ini's syntax rules, frp's conversion quirks, ranges, includes."""

import os

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import (
    HTTPProxyConfig,
    STCPVisitorConfig,
    TCPProxyConfig,
    XTCPVisitorConfig,
    parse_client_config,
    parse_server_config,
)
from frptw.config.ini import IniSyntaxError, looks_like_legacy_ini, parse_ini, split_list
from frptw.config.plugins import ClientPluginOptions, HTTP2HTTPSPluginOptions, UnixDomainSocketPluginOptions
from frptw.errors import ConfigError
from tests.support import tempDir


def client(text: str, **kwargs):
    return parse_client_config(text, None, "frpc.ini", env=kwargs.pop("env", {}), **kwargs)


class GoIniSyntaxTests(SynchronousTestCase):
    """The rules of go-ini that decide what frp reads."""

    def test_sections_keys_and_comments(self) -> None:
        ini = parse_ini("a = 1\n[s]\n  # comment\n; comment\nk = v\nk2: v2\n")
        self.assertEqual(ini.sections["DEFAULT"].keys, {"a": "1"})
        self.assertEqual(ini.sections["s"].keys, {"k": "v", "k2": "v2"})

    def test_section_name_runs_to_last_bracket_and_is_not_trimmed(self) -> None:
        ini = parse_ini("[ a ]\n[b]]\n")
        self.assertIn(" a ", ini.sections)
        self.assertIn("b]", ini.sections)

    def test_inline_comments_are_kept(self) -> None:
        self.assertEqual(parse_ini("[s]\nk = abc # x\n").sections["s"].keys["k"], "abc # x")
        stripped = parse_ini("[s]\nk = abc # x\n", strip_inline_comments=True)
        self.assertEqual(stripped.sections["s"].keys["k"], "abc")

    def test_quotes(self) -> None:
        keys = parse_ini('[s]\na = "x"\nb = \'y\'\nc = `z`\nd = "un"balanced"\n"e" = 1\n').sections["s"].keys
        self.assertEqual(keys, {"a": "x", "b": "y", "c": "z", "d": '"un"balanced"', "e": "1"})

    def test_multiline_backtick_and_triple_quote(self) -> None:
        keys = parse_ini('[s]\na = `one\ntwo`\nb = """x\ny"""\n').sections["s"].keys
        self.assertEqual(keys, {"a": "one\ntwo", "b": "x\ny"})

    def test_continuation_line(self) -> None:
        keys = parse_ini("[s]\na = one \\\n  two\n[t]\n").sections["s"].keys
        self.assertEqual(keys, {"a": "one two"})

    def test_repeated_section_merges(self) -> None:
        ini = parse_ini("[s]\na = 1\nb = 1\n[t]\n[s]\nb = 2\n")
        self.assertEqual(ini.sections["s"].keys, {"a": "1", "b": "2"})
        self.assertEqual(ini.reopened, [("s", 5)])

    def test_boolean_keys(self) -> None:
        self.assertEqual(parse_ini("[s]\nflag\n").sections["s"].keys, {"flag": "true"})
        self.assertRaises(IniSyntaxError, parse_ini, "[s]\nflag\n", allow_boolean_keys=False)

    def test_syntax_errors(self) -> None:
        for text, line in (("[s\n", 1), ("[]\n", 1), ("[s]\n= v\n", 2), ("[s]\na = `open\n", 2), ('[s]\n"k = v\n', 2)):
            with self.assertRaises(IniSyntaxError) as caught:
                parse_ini(text)
            self.assertEqual(caught.exception.line, line, text)

    def test_parent_sections_and_references(self) -> None:
        ini = parse_ini("[web]\nport = 80\nbase = 10\n[web.v2]\nx = %(base)s%(base)s\n[DEFAULT]\nd = 7\n[o]\ny = %(d)s\n")
        child = ini.sections["web.v2"]
        self.assertEqual(child.get("port"), "80")
        self.assertEqual(child.get("x"), "1010")
        self.assertEqual(ini.sections["o"].get("y"), "7")
        self.assertIsNone(ini.sections["o"].get("port"))

    def test_split_list(self) -> None:
        self.assertEqual(split_list("a.test, b.test ,c.test"), ["a.test", "b.test", "c.test"])
        self.assertEqual(split_list("a\\,b,c,"), ["a,b", "c"])
        self.assertEqual(split_list(""), [])

    def test_detection(self) -> None:
        """frp reads a file as INI only if go-ini parses it (no bare keys) and it has [common]."""
        self.assertTrue(looks_like_legacy_ini("[common]\nserver_addr = x\n"))
        self.assertFalse(looks_like_legacy_ini("[ssh]\ntype = tcp\n"))
        self.assertFalse(looks_like_legacy_ini("[common]\n[ssh]\nuse_encryption\n"))
        self.assertFalse(looks_like_legacy_ini('serverAddr = "x"\n'))


class ClientConversionTests(SynchronousTestCase):
    def test_common_keys(self) -> None:
        c = client(
            "[common]\nserver_addr = 10.0.0.1\nserver_port = 7001\nuser = alice\ntoken = t\n"
            "authenticate_heartbeats = true\nauthenticate_new_work_conns = on\ntcp_mux = false\n"
            "tls_enable = no\nprotocol = websocket\npool_count = 3\nadmin_port = 7400\nmeta_team = red\n"
            "login_fail_exit = false\nheartbeat_interval = 20\ndisable_custom_tls_first_byte = false\n"
            "oidc_additional_audience = x\nlog_file = /tmp/frpc.log\nstart = a, b\n"
        )
        self.assertEqual((c.server_addr, c.server_port, c.user, c.auth.token), ("10.0.0.1", 7001, "alice", "t"))
        self.assertEqual(c.auth.additional_scopes, ["HeartBeats", "NewWorkConns"])
        t = c.transport
        self.assertEqual((t.tcp_mux, t.tls.enable, t.protocol, t.pool_count), (False, False, "websocket", 3))
        self.assertEqual((t.heartbeat_interval, t.heartbeat_timeout), (20, 90))
        self.assertFalse(t.tls.disable_custom_tls_first_byte)
        self.assertEqual((c.web_server.port, c.metadatas, c.login_fail_exit), (7400, {"team": "red"}, False))
        self.assertEqual(c.auth.oidc.additional_endpoint_params, {"audience": "x"})
        self.assertEqual((c.log.to, c.start), ("/tmp/frpc.log", ["a", "b"]))

    def test_numbers_use_go_syntax(self) -> None:
        c = client("[common]\nserver_port = 0x1b58\n[a]\nlocal_port = 0o26\n[b]\nlocal_port = 2_2\n")
        self.assertEqual(c.server_port, 7000)
        self.assertEqual([p.local_port for p in c.proxies], [22, 22])

    def test_unparsable_values_fall_back_with_a_warning(self) -> None:
        """frp silently ignores a number or boolean it cannot parse; we warn, naming the key."""
        c = client("[common]\nserver_port = abc\ntls_enable = maybe\n[ssh]\nlocal_port = 22 # comment\n")
        self.assertEqual((c.server_port, c.transport.tls.enable, c.proxies[0].local_port), (7000, True, 0))
        self.assertIn('frpc.ini [common] server_port: "abc" is not an integer; frp ignores it and uses the default', c.warnings)
        self.assertTrue(any("[ssh] local_port" in w and "22 # comment" in w for w in c.warnings))

    def test_go_ini_booleans(self) -> None:
        """go-ini accepts y/n but not Y/N."""
        self.assertFalse(client("[common]\ntls_enable = n\n").transport.tls.enable)
        self.assertTrue(client("[common]\ntls_enable = N\n").transport.tls.enable)

    def test_proxy_keys(self) -> None:
        c = client(
            "[common]\nuser = u\n[web]\ntype = http\nlocal_port = 80\ncustom_domains = a.test, b.test\n"
            "locations = /,/api\nhttp_pwd = p\nheader_X-From = frp\nmeta_owner = dave\ngroup = g\n"
            "group_key = k\nhealth_check_type = http\nhealth_check_url = /ok\nhealth_check_interval_s = 5\n"
            "bandwidth_limit = 1.5MB\nbandwidth_limit_mode = server\n"
        )
        web = c.proxies[0]
        self.assertIsInstance(web, HTTPProxyConfig)
        self.assertEqual(web.name, "web")
        self.assertEqual((web.custom_domains, web.locations, web.http_password), (["a.test", "b.test"], ["/", "/api"], "p"))
        self.assertEqual((web.request_headers.set, web.metadatas), ({"X-From": "frp"}, {"owner": "dave"}))
        self.assertEqual((web.load_balancer.group, web.load_balancer.group_key), ("g", "k"))
        self.assertEqual((web.health_check.type, web.health_check.path, web.health_check.interval_seconds), ("http", "/ok", 5))
        self.assertEqual((web.transport.bandwidth_limit, web.transport.bandwidth_limit_mode), ("1.5MB", "server"))

    def test_type_defaults_to_tcp(self) -> None:
        self.assertIsInstance(client("[common]\n[ssh]\nlocal_port = 22\n").proxies[0], TCPProxyConfig)

    def test_plugin_params(self) -> None:
        c = client(
            "[common]\n[sock]\nplugin = unix_domain_socket\nplugin_unix_path = /run/d.sock\n"
            "[h]\ntype = http\ncustom_domains = h.test\nplugin = http2https\nplugin_local_addr = 127.0.0.1:443\n"
            "plugin_header_X-A = 1\n"
        )
        sock, h = c.proxies
        self.assertEqual(sock.plugin, UnixDomainSocketPluginOptions(unix_path="/run/d.sock"))
        self.assertEqual(h.plugin, HTTP2HTTPSPluginOptions(local_addr="127.0.0.1:443", request_headers=h.plugin.request_headers))
        self.assertEqual(h.plugin.request_headers.set, {"X-A": "1"})

    def test_unknown_plugin_is_accepted_with_a_warning(self) -> None:
        c = client("[common]\n[p]\nplugin = bogus\n")
        self.assertEqual(c.proxies[0].plugin, ClientPluginOptions(type="bogus"))
        self.assertTrue(any("plugin" in w and "bogus" in w for w in c.warnings))

    def test_unknown_keys_are_ignored_with_a_warning(self) -> None:
        c = client("[common]\nbind_port = 7000\n[ssh]\nlocal_port = 22\nremote_prot = 6000\n")
        self.assertTrue(any("[common] unknown key 'bind_port'" in w for w in c.warnings))
        self.assertTrue(any("[ssh] unknown key 'remote_prot'" in w for w in c.warnings))

    def test_duplicate_sections_merge_with_a_warning(self) -> None:
        c = client("[common]\n[ssh]\nlocal_port = 22\n[ssh]\nremote_port = 6000\n")
        self.assertEqual(len(c.proxies), 1)
        self.assertEqual((c.proxies[0].local_port, c.proxies[0].remote_port), (22, 6000))
        self.assertTrue(any("[ssh] appears again at line 4" in w for w in c.warnings))

    def test_missing_local_port_is_accepted_with_a_warning(self) -> None:
        c = client("[common]\n[ssh]\nremote_port = 6000\n")
        self.assertEqual(c.proxies[0].local_port, 0)
        self.assertTrue(any("[ssh] local_port: not set" in w for w in c.warnings))

    def test_child_section_inherits_from_parent(self) -> None:
        c = client("[common]\n[web]\ntype = http\ncustom_domains = w.test\nlocal_port = 80\n[web.v2]\nlocations = /v2\n")
        self.assertEqual([(p.name, p.local_port, p.custom_domains) for p in c.proxies],
                         [("web", 80, ["w.test"]), ("web.v2", 80, ["w.test"])])

    def test_start_skips_other_sections_before_parsing_them(self) -> None:
        c = client("[common]\nstart = ssh\n[ssh]\nlocal_port = 22\n[broken]\ntype = nosuchtype\n")
        self.assertEqual([p.name for p in c.proxies], ["ssh"])

    def test_visitors(self) -> None:
        c = client(
            "[common]\n[sv]\nrole = visitor\ntype = stcp\nserver_name = s\nbind_port = 9000\nsk = k\n"
            "[xv]\nrole = visitor\ntype = xtcp\nserver_name = x\nbind_port = 9001\nmax_retries_an_hour = -1\n"
        )
        sv, xv = c.visitors
        self.assertEqual(sv, STCPVisitorConfig(name="sv", server_name="s", bind_port=9000, secret_key="k"))
        self.assertIsInstance(xv, XTCPVisitorConfig)
        self.assertEqual((xv.protocol, xv.max_retries_an_hour), ("quic", 8))


class RangeTests(SynchronousTestCase):
    def test_expansion_uses_zero_based_names(self) -> None:
        """Like frp 0.65: NAME_0, NAME_1... (not the port numbers the sample file suggests)."""
        c = client("[common]\n[range:tp]\ntype = tcp\nuse_encryption = true\nlocal_port = 6000-6001,6005\nremote_port = 7000-7002\n")
        got = [(p.name, p.local_port, p.remote_port, p.transport.use_encryption) for p in c.proxies]
        self.assertEqual(got, [("tp_0", 6000, 7000, True), ("tp_1", 6001, 7001, True), ("tp_2", 6005, 7002, True)])

    def test_errors_name_the_range_section(self) -> None:
        for body, key in (
            ("local_port = 1-2\nremote_port = 3\n", "[range:tp]:"),
            ("local_port = 1-2\n", "[range:tp] remote_port:"),
            ("local_port = 2-1\nremote_port = 3\n", "[range:tp] local_port:"),
            ("local_port = 1\nremote_port = x\n", "[range:tp] remote_port:"),
        ):
            with self.assertRaises(ConfigError) as caught:
                client("[common]\n[range:tp]\n" + body)
            self.assertIn(f"frpc.ini {key}", str(caught.exception))


class IncludeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempDir(self)
        os.makedirs(os.path.join(self.directory, "conf.d"))
        for name, text in (("a.ini", "[a]\nlocal_port = 1\n"), ("b.ini", "[b]\nlocal_port = 2\n"), ("c.txt", "[c]\n")):
            with open(os.path.join(self.directory, "conf.d", name), "w") as f:
                f.write(text)

    def test_included_sections_are_appended(self) -> None:
        pattern = os.path.join(self.directory, "conf.d", "*.ini")
        c = client(f"[common]\nincludes = {pattern}\n[main]\nlocal_port = 3\n")
        self.assertEqual([p.name for p in c.proxies], ["main", "a", "b"])

    def test_missing_directory_is_an_error(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            client(f"[common]\nincludes = {self.directory}/nope/*.ini\n")
        self.assertIn("does not exist", str(caught.exception))


class ServerConversionTests(SynchronousTestCase):
    def server(self, text: str):
        return parse_server_config(text, None, "frps.ini", env={})

    def test_common_keys(self) -> None:
        s = self.server(
            "[common]\nbind_addr = 127.0.0.1\nbind_port = 7001\nvhost_http_port = 80\nsubdomain_host = x.test\n"
            "tls_only = true\nmax_pool_count = 10\ntcp_mux = false\ndetailed_errors_to_client = false\n"
            "tcpmux_httpconnect_port = 1337\ncustom_404_page = /404.html\n"
        )
        self.assertEqual((s.bind_addr, s.bind_port, s.proxy_bind_addr, s.vhost_http_port), ("127.0.0.1", 7001, "127.0.0.1", 80))
        self.assertEqual((s.subdomain_host, s.transport.tls.force, s.transport.max_pool_count), ("x.test", True, 10))
        self.assertEqual((s.transport.heartbeat_timeout, s.detailed_errors_to_client), (90, False))
        self.assertEqual((s.tcpmux_http_connect_port, s.custom404_page), (1337, "/404.html"))

    def test_dashboard(self) -> None:
        s = self.server("[common]\ndashboard_port = 7500\n")
        self.assertEqual((s.web_server.addr, s.web_server.port, s.web_server.tls), ("0.0.0.0", 7500, None))
        s = self.server("[common]\ndashboard_tls_mode = true\ndashboard_tls_cert_file = c\ndashboard_tls_key_file = k\npprof_enable = true\n")
        self.assertEqual((s.web_server.tls.cert_file, s.web_server.tls.key_file, s.web_server.pprof_enable), ("c", "k", True))

    def test_pprof_needs_tls_mode(self) -> None:
        """frp 0.52+ quirk: the INI converter copies pprof_enable only with dashboard_tls_mode."""
        s = self.server("[common]\npprof_enable = true\n")
        self.assertFalse(s.web_server.pprof_enable)
        self.assertTrue(any("pprof_enable" in w for w in s.warnings))

    def test_allow_ports(self) -> None:
        s = self.server("[common]\nallow_ports = 2000-3000,3001, 3003 ,4000-50000\n")
        self.assertEqual(s.allow_ports, [(2000, 3000), (3001, 3001), (3003, 3003), (4000, 50000)])

    def test_malformed_allow_ports_are_ignored_with_a_warning(self) -> None:
        s = self.server("[common]\nallow_ports = 2000-abc\n")
        self.assertEqual(s.allow_ports, [])
        self.assertTrue(any("EVERY port is allowed" in w for w in s.warnings))

    def test_plugin_sections(self) -> None:
        s = self.server(
            "[common]\n[plugin.users]\naddr = 127.0.0.1:9000\npath = /h\nops = Login, NewProxy\ntlsVerify = true\n"
            "[plugin.ports]\naddr = https://x\npath = /p\nops = NewProxy\n"
        )
        self.assertEqual([(p.name, p.addr, p.path, p.ops, p.tls_verify) for p in s.http_plugins], [
            ("users", "127.0.0.1:9000", "/h", ["Login", "NewProxy"], True),
            ("ports", "https://x", "/p", ["NewProxy"], False),
        ])

    def test_invalid_plugin_op(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            self.server("[common]\n[plugin.p]\nops = Login, Nope\n")
        self.assertIn('frps.ini [plugin.p] ops: "Nope" is not one of Login', str(caught.exception))
