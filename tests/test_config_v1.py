"""The v1 formats (TOML, YAML, JSON): detection, Go JSON decoding rules, strict mode, includes."""

import os

from twisted.trial.unittest import SynchronousTestCase

from frptw.config import (
    HTTPProxyConfig,
    TCPProxyConfig,
    detect_role,
    load_config,
    parse_client_config,
    parse_server_config,
)
from frptw.config.documents import DocumentError, parse_v1
from frptw.config.plugins import HTTPS2HTTPPluginOptions, Socks5PluginOptions, VirtualNetVisitorPluginOptions
from frptw.errors import ConfigError
from tests.support import tempDir

PROXY = '[[proxies]]\nname = "ssh"\ntype = "tcp"\nlocalPort = 22\n'


def client(text: str, fmt=None, strict: bool = True, source: str = "frpc.toml"):
    return parse_client_config(text, fmt, source, strict=strict, env={})


class DetectionTests(SynchronousTestCase):
    def test_toml_then_json_then_yaml(self) -> None:
        self.assertEqual(parse_v1('a = "b"'), ({"a": "b"}, "toml"))
        self.assertEqual(parse_v1('{"a": "b"}'), ({"a": "b"}, "json"))
        self.assertEqual(parse_v1("a: b\n"), ({"a": "b"}, "yaml"))
        self.assertEqual(parse_v1(""), ({}, "toml"))

    def test_extension_is_only_a_hint(self) -> None:
        """frp 0.65 reads a .toml file holding YAML as YAML."""
        config = client("serverAddr: 10.0.0.1\n", source="frpc.toml")
        self.assertEqual((config.server_addr, config.format), ("10.0.0.1", "yaml"))

    def test_toml_error_is_reported_for_toml_typos(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            client('serverAddr = "x\n')
        self.assertIn("frpc.toml line 1: TOML syntax error", str(caught.exception))

    def test_json_reads_only_the_first_value(self) -> None:
        self.assertEqual(client('{"serverAddr": "x"} and more', source="c.json").server_addr, "x")

    def test_top_level_must_be_a_mapping(self) -> None:
        self.assertRaises(DocumentError, parse_v1, "- a\n- b\n")
        self.assertRaises(ConfigError, client, "[1, 2]", source="c.json")

    def test_role(self) -> None:
        self.assertEqual(detect_role('serverAddr = "x"\n'), "frpc")
        self.assertEqual(detect_role("bindPort = 7000\nvhostHTTPPort = 80\n"), "frps")
        self.assertEqual(detect_role(PROXY), "frpc")
        self.assertEqual(detect_role("[common]\nbind_port = 7000\n"), "frps")
        self.assertEqual(detect_role("[common]\nserver_addr = x\n[ssh]\nlocal_port = 22\n"), "frpc")
        self.assertEqual(detect_role("", source="/etc/frp/frps.toml"), "frps")


class GoJsonRulesTests(SynchronousTestCase):
    def test_keys_are_case_insensitive(self) -> None:
        config = client('{"ServerAddr": "a", "SERVERPORT": 7001, "proxies": [{"NAME": "p", "Type": "tcp", '
                        '"localport": 1, "Transport": {"UseEncryption": true}}]}', source="c.json")
        self.assertEqual((config.server_addr, config.server_port), ("a", 7001))
        self.assertEqual((config.proxies[0].name, config.proxies[0].transport.use_encryption), ("p", True))

    def test_later_duplicate_wins(self) -> None:
        self.assertEqual(client('{"serverAddr": "a", "ServerAddr": "b"}', source="c.json").server_addr, "b")

    def test_types_must_match(self) -> None:
        for text, message in (
            ('{"serverPort": "7000"}', 'serverPort: expected an integer, got a string "7000"'),
            ('{"serverPort": 7000.0}', "serverPort: expected an integer, got a fractional number"),
            ('{"serverPort": 9223372036854775808}', "does not fit in a 64-bit integer"),
            ('{"user": 5}', "user: expected a string, got a number 5"),
            ('{"loginFailExit": "true"}', "loginFailExit: expected true or false"),
            ('{"start": "a"}', "start: expected a list"),
            ('{"metadatas": {"a": 1}}', "metadatas.a: expected a string"),
            ('{"transport": 5}', "transport: expected an object of keys"),
        ):
            with self.assertRaises(ConfigError) as caught:
                client(text, source="c.json")
            self.assertIn(message, str(caught.exception), text)

    def test_null_keeps_the_default(self) -> None:
        config = client('{"serverPort": null, "loginFailExit": null, "proxies": null}', source="c.json")
        self.assertEqual((config.server_port, config.login_fail_exit, config.proxies), (7000, True, []))

    def test_whole_floats_are_integers_in_toml_and_yaml(self) -> None:
        """Go marshals 7000.0 from TOML/YAML as 7000 before decoding."""
        self.assertEqual(client("serverPort = 7000.0\n").server_port, 7000)
        self.assertEqual(client("serverPort: 7000.0\n", source="c.yaml").server_port, 7000)


class HostileDocumentTests(SynchronousTestCase):
    """Found by bench/fuzz.py: these raised RecursionError or ValueError instead of a config error."""

    def test_nesting_deeper_than_the_recursion_limit(self) -> None:
        for text, source in (("[" * 100_000, "c.json"), ('{"a":' * 50_000, "c.json"),
                             ("a = " + "[" * 100_000, "c.toml"), ("- " * 50_000 + "x", "c.yaml")):
            with self.assertRaisesRegex(ConfigError, "nested too deeply"):
                client(text, source=source)

    def test_integers_longer_than_python_converts(self) -> None:
        for text, source, message in (('{"serverPort": ' + "9" * 5000 + "}", "c.json", "of 5000 digits is out of range"),
                                      ("serverPort = " + "9" * 5000, "c.toml", "Exceeds the limit"),
                                      ("serverPort = 0x" + "9" * 5000, "c.toml", "bits is out of range")):
            with self.assertRaisesRegex(ConfigError, message):
                client(text, source=source)


class StrictModeTests(SynchronousTestCase):
    def test_unknown_key_is_an_error(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            client('serverAddr = "x"\nfooBar = 1\n')
        self.assertEqual(str(caught.exception), 'frpc.toml: unknown key "fooBar"')

    def test_unknown_key_in_proxy_names_the_proxy(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            client(PROXY + "enabled = true\n")
        self.assertEqual(str(caught.exception), 'frpc.toml proxy "ssh": unknown key "enabled"')

    def test_non_strict_ignores_with_warnings(self) -> None:
        config = client('fooBar = 1\n' + PROXY + "typo = 2\n", strict=False)
        self.assertEqual(config.proxies[0].local_port, 22)
        self.assertEqual(len([w for w in config.warnings if "ignored" in w]), 2)

    def test_yaml_dot_keys_hold_anchors(self) -> None:
        config = client(".base: &b\n  type: tcp\n  localPort: 22\nproxies:\n  - <<: *b\n    name: a\n", source="c.yaml")
        self.assertEqual((config.proxies[0].type, config.proxies[0].local_port), ("tcp", 22))


class YamlRulesTests(SynchronousTestCase):
    """go-yaml v2 (YAML 1.1) scalars, as frp reads them."""

    def yaml(self, text: str):
        return client(text, source="c.yaml")

    def test_yaml_11_booleans(self) -> None:
        for word in ("y", "yes", "on", "n", "off"):
            self.assertRaises(ConfigError, self.yaml, f"user: {word}\n")
        self.assertFalse(self.yaml("loginFailExit: off\n").login_fail_exit)

    def test_go_number_syntax(self) -> None:
        for text in ("0o15530", "015530", "0x1b58", "7_000", "+7000", "0b1101101011000"):
            self.assertEqual(self.yaml(f"serverPort: {text}\n").server_port, 7000, text)

    def test_timestamps_and_sexagesimals_stay_strings(self) -> None:
        self.assertEqual(self.yaml("serverAddr: 2001-12-14\n").server_addr, "2001-12-14")
        self.assertEqual(self.yaml("serverAddr: 1:30\n").server_addr, "1:30")

    def test_infinity_cannot_be_converted(self) -> None:
        self.assertRaises(ConfigError, self.yaml, "serverPort: .inf\n")


class ProxyDecodingTests(SynchronousTestCase):
    def test_type_selects_the_class(self) -> None:
        config = client('[[proxies]]\nname = "w"\ntype = "http"\nsubdomain = "w"\nlocalPort = 80\n' + PROXY)
        self.assertEqual([type(p) for p in config.proxies], [HTTPProxyConfig, TCPProxyConfig])

    def test_unknown_and_missing_type(self) -> None:
        for body, message in (('type = "foo"', 'type: unknown proxy type "foo"'), ("", "type: missing type")):
            with self.assertRaises(ConfigError) as caught:
                client(f'[[proxies]]\nname = "p"\n{body}\n')
            self.assertIn(message, str(caught.exception))

    def test_plugins(self) -> None:
        config = client(
            '[[proxies]]\nname = "s"\ntype = "https"\nsubdomain = "s"\n'
            'plugin = {type = "https2http", localAddr = "127.0.0.1:80"}\n'
            '[[proxies]]\nname = "k"\ntype = "tcp"\nplugin = {type = "socks5", username = "u"}\n'
        )
        self.assertEqual(config.proxies[0].plugin, HTTPS2HTTPPluginOptions(local_addr="127.0.0.1:80"))
        self.assertTrue(config.proxies[0].plugin.enable_http2)
        self.assertEqual(config.proxies[1].plugin, Socks5PluginOptions(username="u"))

    def test_plugin_needs_a_known_type(self) -> None:
        for plugin, message in (('{unixPath = "/x"}', "plugin type is empty"), ('{type = "x"}', 'unknown plugin type "x"')):
            with self.assertRaises(ConfigError) as caught:
                client(PROXY + f"plugin = {plugin}\n")
            self.assertIn(f'proxy "ssh" plugin.type: {message}', str(caught.exception))

    def test_visitor_plugin(self) -> None:
        config = client('[[visitors]]\nname = "v"\ntype = "stcp"\nserverName = "s"\nbindPort = -1\n'
                        'plugin = {type = "virtual_net", destinationIP = "100.86.0.2"}\n')
        self.assertEqual(config.visitors[0].plugin, VirtualNetVisitorPluginOptions(destination_ip="100.86.0.2"))

    def test_bandwidth(self) -> None:
        self.assertEqual(client(PROXY + 'transport.bandwidthLimit = " 2KB "\n').proxies[0].transport.bandwidth_limit, "2KB")
        for bad in ("1GB", "1 MB", "fastMB", "1mb"):
            self.assertRaises(ConfigError, client, PROXY + f'transport.bandwidthLimit = "{bad}"\n')

    def test_allow_ports(self) -> None:
        server = parse_server_config("allowPorts = [{start = 2000, end = 3000}, {single = 3001}]\n", "toml", env={})
        self.assertEqual(server.allow_ports, [(2000, 3000), (3001, 3001)])


class ClientLoadingTests(SynchronousTestCase):
    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setUp(self) -> None:
        self.directory = tempDir(self)
        os.makedirs(os.path.join(self.directory, "conf.d"))

    def test_includes(self) -> None:
        self.write("conf.d/a.toml", PROXY)
        self.write("conf.d/b.yaml", "proxies:\n  - name: web\n    type: http\n    subdomain: w\n    localPort: 80\n")
        self.write("conf.d/skip.txt", "not a config")
        main = self.write("frpc.toml", f'includes = ["{self.directory}/conf.d/*.*ml"]\n')
        self.assertEqual([p.name for p in load_config(main, "frpc", env={}).proxies], ["ssh", "web"])

    def test_included_errors_name_the_included_file(self) -> None:
        bad = self.write("conf.d/bad.toml", PROXY + "oops = 1\n")
        main = self.write("frpc.toml", f'includes = ["{self.directory}/conf.d/*.toml"]\n')
        with self.assertRaises(ConfigError) as caught:
            load_config(main, "frpc", env={})
        self.assertEqual(str(caught.exception), f'{bad} proxy "ssh": unknown key "oops"')

    def test_start_filters_proxies_and_visitors(self) -> None:
        config = client('start = ["ssh"]\n' + PROXY + '[[proxies]]\nname = "other"\ntype = "tcp"\nlocalPort = 70000\n')
        self.assertEqual([p.name for p in config.proxies], ["ssh"])

    def test_token_source_file(self) -> None:
        token = self.write("token", "  s3cret\n")
        config = client(f'auth.tokenSource = {{type = "file", file = {{path = "{token}"}}}}\n')
        self.assertEqual((config.auth.token, config.auth.token_source), ("s3cret", None))

    def test_duplicate_names_are_accepted_with_a_warning(self) -> None:
        config = client(PROXY + PROXY)
        self.assertEqual(len(config.proxies), 2)
        self.assertTrue(any('proxy "ssh" name: 2 proxy entries share this name' in w for w in config.warnings))

    def test_unreadable_file(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            load_config(os.path.join(self.directory, "missing.toml"))
        self.assertIn("missing.toml: cannot read the file", str(caught.exception))

    def test_result_records_source_and_format(self) -> None:
        path = self.write("frps.yaml", "bindPort: 7001\n")
        server = load_config(path)
        self.assertEqual((server.bind_port, server.source, server.format), (7001, path, "yaml"))
