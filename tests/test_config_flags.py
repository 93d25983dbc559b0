"""frp's command-line configuration: pflag's ways of writing a flag, the documents ``frps``
flags and ``frpc tcp``-style commands describe (with frp's flag defaults), and ``twistd
frps``/``twistd frpc`` reading them (against the real binaries: tests/test_cli_flags_interop.py).
"""

import io
import os
import sys

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.config import parse_client_config, parse_server_config
from frptw.config.flagparse import BOOL, INT, LIST, MAP, STRING, Flag, FlagError, FlagSet
from frptw.config.flags import SERVER_FLAGS, client_command, server_document
from frptw.config.load import config_from_document
from frptw.errors import ConfigError
from frptw.tap import ClientOptions, ServerOptions
from tests.support import tempDir

FLAGS = FlagSet([
    Flag("server-addr", "s", STRING, "serverAddr"),
    Flag("server-port", "P", INT, "serverPort"),
    Flag("tls-enable", None, BOOL, "transport.tls.enable"),
    Flag("ue", "e", BOOL, "useEncryption"),
    Flag("custom-domain", "d", LIST, "customDomains"),
    Flag("metadatas", None, MAP, "metadatas"),
])


class FlagParsingTests(SynchronousTestCase):
    def test_every_way_pflag_takes_a_value(self) -> None:
        for args in (["--server-addr=h"], ["--server-addr", "h"], ["--server_addr", "h"], ["-s", "h"],
                     ["-sh"], ["-s=h"]):
            self.assertEqual(FLAGS.parse(args), ({"server-addr": "h"}, []), args)

    def test_integers_are_read_as_go_reads_them(self) -> None:
        for text, value in (("7000", 7000), ("0x1b58", 7000), ("015530", 7000), ("-1", -1), ("1_000", 1000)):
            self.assertEqual(FLAGS.parse(["-P", text])[0], {"server-port": value}, text)
        for text in ("x", "7000x", "", "1__0", "08"):
            error = self.assertRaises(FlagError, FLAGS.parse, ["-P", text])
            self.assertIn('for "-P, --server-port" flag', str(error))

    def test_bools_stand_alone_or_take_equals(self) -> None:
        self.assertEqual(FLAGS.parse(["--tls-enable"])[0], {"tls-enable": True})
        self.assertEqual(FLAGS.parse(["--tls_enable=false"])[0], {"tls-enable": False})
        self.assertEqual(FLAGS.parse(["--tls-enable=0", "-e"])[0], {"tls-enable": False, "ue": True})
        self.assertEqual(FLAGS.parse(["--tls-enable", "false"]), ({"tls-enable": True}, ["false"]))
        self.assertRaises(FlagError, FLAGS.parse, ["--tls-enable=yes"])

    def test_shorthand_bools_combine_with_a_valued_flag(self) -> None:
        self.assertEqual(FLAGS.parse(["-esh"])[0], {"ue": True, "server-addr": "h"})

    def test_lists_split_at_commas_and_add_up(self) -> None:
        self.assertEqual(FLAGS.parse(["-d", "a.com,b.com", "--custom_domain", "c.com"])[0],
                         {"custom-domain": ["a.com", "b.com", "c.com"]})
        self.assertEqual(FLAGS.parse(["-d", ""])[0], {"custom-domain": []})

    def test_maps_take_pairs(self) -> None:
        self.assertEqual(FLAGS.parse(["--metadatas", "a=1,b=x=y", "--metadatas", "c="])[0],
                         {"metadatas": {"a": "1", "b": "x=y", "c": ""}})
        error = self.assertRaises(FlagError, FLAGS.parse, ["--metadatas", "a"])
        self.assertIn("a must be formatted as key=value", str(error))

    def test_refusals_say_what_is_wrong(self) -> None:
        for args, text in ((["--bogus"], "unknown flag: --bogus"), (["-x"], "unknown shorthand flag: 'x' in -x"),
                           (["-s"], "flag needs an argument: -s"), (["--server-addr"], "flag needs an argument")):
            self.assertIn(text, str(self.assertRaises(FlagError, FLAGS.parse, args)))

    def test_positionals_and_the_end_of_flags(self) -> None:
        self.assertEqual(FLAGS.parse(["a", "-s", "h", "--", "-P"]), ({"server-addr": "h"}, ["a", "-P"]))
        self.assertEqual(FLAGS.parse(["-s", "h", "tcp", "-P", "1"], interspersed=False),
                         ({"server-addr": "h"}, ["tcp", "-P", "1"]))

    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))
    def test_a_string_value_comes_back_as_written(self, value: str) -> None:
        self.assertEqual(FLAGS.parse([f"--server-addr={value}"])[0], {"server-addr": value})
        self.assertEqual(FLAGS.parse(["-s", value])[0], {"server-addr": value})


def _server(*args: str):
    given, rest = SERVER_FLAGS.parse(args)
    assert not rest
    return config_from_document(server_document(given), "frps", "frps command line")


def _client(*args: str):
    document, _ = client_command(args)
    return config_from_document(document, "frpc", "frpc command line")


class ServerFlagsTests(SynchronousTestCase):
    def test_flags_mean_what_the_file_keys_mean(self) -> None:
        fromFlags = _server("-t", "123", "-p", "7001", "--vhost-http-port", "8080", "--subdomain_host", "a.com",
                            "--allow-ports", "2000-3000,3001", "--max-ports-per-client", "5", "--tls-only",
                            "--dashboard-port", "7500", "--dashboard-pwd", "s3cret")
        fromFile = parse_server_config(
            'auth.token = "123"\nbindPort = 7001\nvhostHTTPPort = 8080\nsubDomainHost = "a.com"\n'
            'allowPorts = [{start = 2000, end = 3000}, {single = 3001}]\nmaxPortsPerClient = 5\n'
            'transport.tls.force = true\nwebServer.port = 7500\nwebServer.user = "admin"\n'
            'webServer.password = "s3cret"\nwebServer.addr = "0.0.0.0"\nproxyBindAddr = "0.0.0.0"\n', "toml")
        fromFlags.source = fromFile.source
        fromFlags.format = fromFile.format
        self.assertEqual(fromFlags, fromFile)

    def test_frps_flag_defaults(self) -> None:
        config = _server()
        self.assertEqual((config.bind_addr, config.bind_port, config.proxy_bind_addr, config.vhost_http_timeout),
                         ("0.0.0.0", 7000, "0.0.0.0", 60))
        self.assertEqual((config.web_server.addr, config.web_server.user, config.web_server.password),
                         ("0.0.0.0", "admin", "admin"))
        self.assertEqual(_server("--bind-addr", "127.0.0.1").proxy_bind_addr, "0.0.0.0")

    def test_the_dashboard_tls_mode_flag_changes_nothing_as_in_frp_065(self) -> None:
        config = _server("--dashboard-port", "7500", "--dashboard-tls-mode", "true",
                         "--dashboard-tls-cert-file", "c.pem", "--dashboard-tls-key-file", "k.pem")
        self.assertIsNone(config.web_server.tls)
        self.assertRaises(FlagError, SERVER_FLAGS.parse, ["--dashboard-tls-mode"])

    def test_bad_values_are_refused(self) -> None:
        self.assertIn("--allow-ports", str(self.assertRaises(FlagError, _server, "--allow-ports", "1-x")))
        error = self.assertRaises(ConfigError, _server, "-p", "70000")
        self.assertIn("frps command line", str(error))
        self.assertIn("bindPort", str(error))


class ClientCommandTests(SynchronousTestCase):
    def test_tcp(self) -> None:
        config = _client("tcp", "-s", "198.51.100.7", "-P", "7001", "-t", "123", "-u", "test", "-l", "22",
                         "-r", "6000", "-n", "ssh", "--ue", "--uc", "--metadatas", "a=1", "--bandwidth_limit", "1MB")
        self.assertEqual((config.server_addr, config.server_port, config.auth.token, config.user),
                         ("198.51.100.7", 7001, "123", "test"))
        [proxy] = config.proxies
        self.assertEqual((proxy.name, proxy.type, proxy.local_ip, proxy.local_port, proxy.remote_port),
                         ("ssh", "tcp", "127.0.0.1", 22, 6000))
        self.assertEqual(proxy.metadatas, {"a": "1"})
        self.assertTrue(proxy.transport.use_encryption and proxy.transport.use_compression)
        self.assertEqual(str(proxy.transport.bandwidth_limit), "1MB")

    def test_the_flag_defaults_differ_from_a_files(self) -> None:
        """``-s`` defaults to 127.0.0.1 (a file's serverAddr to 0.0.0.0)."""
        self.assertEqual(_client("tcp", "-n", "a", "-l", "22").server_addr, "127.0.0.1")
        self.assertEqual(parse_client_config("", "toml").server_addr, "0.0.0.0")

    def test_every_proxy_type(self) -> None:
        for args, check in (
            (["udp", "-n", "dns", "-l", "53", "-r", "6053"], lambda p: p.remote_port == 6053),
            (["http", "-n", "web", "-l", "80", "-d", "a.com,b.com", "--locations", "/x", "--http-user", "u",
              "--http-pwd", "p", "--host-header-rewrite", "in.a.com"],
             lambda p: (p.custom_domains, p.locations, p.http_user, p.host_header_rewrite)
             == (["a.com", "b.com"], ["/x"], "u", "in.a.com")),
            (["https", "-n", "s", "-l", "443", "--sd", "web"], lambda p: p.subdomain == "web"),
            (["tcpmux", "-n", "m", "-l", "22", "-d", "m.com", "--mux", "httpconnect"],
             lambda p: p.multiplexer == "httpconnect"),
            (["stcp", "-n", "s", "-l", "22", "--sk", "k", "--allow_users", "a,b"],
             lambda p: (p.secret_key, p.allow_users) == ("k", ["a", "b"])),
            (["sudp", "-n", "s", "-l", "53", "--sk", "k"], lambda p: p.secret_key == "k"),
            (["xtcp", "-n", "x", "-l", "22", "--sk", "k"], lambda p: p.type == "xtcp"),
        ):
            [proxy] = _client(*args).proxies
            self.assertTrue(check(proxy), args)
            self.assertEqual(proxy.type, args[0])

    def test_visitors(self) -> None:
        config = _client("stcp", "visitor", "-n", "v", "--server-name", "ssh", "--server_user", "bob", "--sk", "k",
                         "--bind-port", "9000", "-u", "alice")
        [visitor] = config.visitors
        self.assertEqual((visitor.name, visitor.type, visitor.server_name, visitor.server_user, visitor.bind_addr,
                          visitor.bind_port), ("v", "stcp", "ssh", "bob", "127.0.0.1", 9000))
        self.assertEqual(config.proxies, [])

    def test_refusals(self) -> None:
        for args, text in (
            (["tcp", "-l", "22"], "frpc command line proxy #1 name"),
            (["http", "-n", "h", "-l", "80"], "customDomains"),
            (["tcp", "visitor", "-n", "v"], 'unexpected argument "visitor" for "frpc tcp"'),
            (["ftp", "-n", "x"], 'unknown command "ftp" for "frpc"'),
            (["tcp", "--sk", "k"], "unknown flag: --sk"),
        ):
            error = self.assertRaises((ConfigError, FlagError), _client, *args)
            self.assertIn(text, str(error), args)


class TwistdOptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def test_frps_from_flags(self) -> None:
        options = ServerOptions()
        options.parseOptions(["-t", "123", "--bind_port", "7001"])
        self.assertEqual((options.loaded.bind_port, options.loaded.auth.token, options["config"]), (7001, "123", None))

    def test_a_config_file_wins_over_flags(self) -> None:
        path = os.path.join(tempDir(self), "frps.toml")
        with open(path, "w") as f:
            f.write("bindPort = 7002\n")
        options = ServerOptions()
        options.parseOptions(["-p", "7001", "-c", path])
        self.assertEqual((options.loaded.bind_port, options["config"]), (7002, path))

    def test_frpc_command(self) -> None:
        options = ClientOptions()
        options.parseOptions(["tcp", "-P", "7001", "-n", "ssh", "-l", "22", "-r", "6000"])
        self.assertEqual([p.name for p in options.loaded.proxies], ["ssh"])
        self.assertIsNone(options["config"])

    def test_frpc_reads_frpc_ini_by_default_as_frp(self) -> None:
        directory = tempDir(self)
        with open(os.path.join(directory, "frpc.ini"), "w") as f:
            f.write("[common]\nserver_port = 7003\n")
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory)
        options = ClientOptions()
        options.parseOptions([])
        self.assertEqual(options.loaded.server_port, 7003)

    def test_bad_command_lines_exit_with_one_line(self) -> None:
        for options, args, text in ((ServerOptions(), ["--bogus"], "frps: unknown flag: --bogus\n"),
                                    (ClientOptions(), ["tcp", "-l", "22"], "frpc: frpc tcp command line proxy #1")):
            self.stderr.truncate(0)
            self.stderr.seek(0)
            exit = self.assertRaises(SystemExit, options.parseOptions, args)
            self.assertEqual(exit.code, 1)
            self.assertTrue(self.stderr.getvalue().startswith(text), self.stderr.getvalue())

    def test_config_dir_is_refused_at_the_top_and_ignored_by_commands_as_in_frp(self) -> None:
        exit = self.assertRaises(SystemExit, ClientOptions().parseOptions, ["--config-dir", "conf.d"])
        self.assertEqual(exit.code, 1)
        self.assertIn("--config-dir", self.stderr.getvalue())
        options = ClientOptions()
        options.parseOptions(["tcp", "--config_dir", "conf.d", "-n", "ssh", "-l", "22"])
        self.assertEqual([p.name for p in options.loaded.proxies], ["ssh"])

    def test_help_lists_a_commands_flags(self) -> None:
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        exit = self.assertRaises(SystemExit, ClientOptions().parseOptions, ["http", "--help"])
        self.assertEqual(exit.code, 0)
        self.assertIn("--host-header-rewrite", out.getvalue())
        self.assertIn("-s, --server-addr", out.getvalue())
