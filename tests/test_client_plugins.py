"""The client plugin seam: ConnectionInfo, the registry, work connections handed to a plugin
after the data plane, and plugins built, refused and closed with their proxies."""

from twisted.internet.defer import succeed
from twisted.internet.testing import AccumulatingProtocol, MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from frptw.client import FrpClientService
from frptw.client._work import RunningProxy, WorkConnection, WorkState
from frptw.client.plugins import (
    ConnectionInfo,
    IClientPlugin,
    PluginContext,
    buildPlugin,
    isSupported,
    register,
    unregister,
)
from frptw.client.plugins.unix_socket import UnixDomainSocketPlugin
from frptw.config import UnixDomainSocketPluginOptions, parse_client_config
from frptw.errors import ConfigError, ConnectionClosed, ProxyError
from frptw.wire.codec import ChainCodec
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.messages import NewProxy, NewProxyResp, NewWorkConn, ReqWorkConn, StartWorkConn, encode_message
from frptw.wire.snappy import SnappyFramingCodec
from tests.fakes import PLAIN, FakeConnection, ServiceTestMixin, config
from tests.support import LogCapture

START = StartWorkConn(proxy_name="p", src_addr="198.51.100.7", src_port=40000, dst_addr="", dst_port=6000)


@implementer(IClientPlugin)
class RecordingPlugin:
    """Keeps what it is handed; the seam's other side, as a test sees it."""

    type = "virtual_net"

    def __init__(self, options, context: PluginContext) -> None:
        self.options, self.context = options, context
        self.handled = []
        self.closed = 0

    def handle(self, conn, info) -> None:
        self.handled.append((conn, info))

    def close(self):
        self.closed += 1
        return succeed(None)


def pluginProxy(plugin: str = 'type = "virtual_net"', kind: str = "tcp", extra: str = "") -> str:
    return f'[[proxies]]\nname = "p"\ntype = "{kind}"\nremotePort = 6000\nlocalPort = 22\n{extra}\n[proxies.plugin]\n{plugin}\n'


class ConnectionInfoTests(SynchronousTestCase):
    def test_addresses_from_start_work_conn(self) -> None:
        info = ConnectionInfo.fromStartWorkConn(START)
        self.assertEqual(info, ConnectionInfo("198.51.100.7", 40000, "127.0.0.1", 6000, b""))

    def test_proxy_protocol_header(self) -> None:
        info = ConnectionInfo.fromStartWorkConn(START, "v1")
        self.assertEqual(info.proxy_protocol_header, b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 6000\r\n")

    def test_unknown_source_gives_nothing(self) -> None:
        self.assertEqual(ConnectionInfo.fromStartWorkConn(StartWorkConn(proxy_name="p", dst_port=80), "v2"),
                         ConnectionInfo())


class RegistryTests(SynchronousTestCase):
    def test_builtin_types(self) -> None:
        self.assertTrue(isSupported("unix_domain_socket"))
        plugin = buildPlugin(UnixDomainSocketPluginOptions(unix_path="/run/x.sock"), PluginContext("p", None))
        self.assertIsInstance(plugin, UnixDomainSocketPlugin)
        self.assertTrue(verifyObject(IClientPlugin, plugin))

    def test_unknown_type(self) -> None:
        self.assertFalse(isSupported("virtual_net"))
        options = parse_client_config(pluginProxy(), "toml").proxies[0].plugin
        error = self.assertRaises(ConfigError, buildPlugin, options, PluginContext("p", None))
        self.assertEqual(str(error), "client plugin 'virtual_net' is not supported by this frpc")

    def test_register_and_unregister(self) -> None:
        register("virtual_net", RecordingPlugin)
        self.addCleanup(unregister, "virtual_net")
        self.assertTrue(isSupported("virtual_net"))
        options = parse_client_config(pluginProxy(), "toml").proxies[0].plugin
        plugin = buildPlugin(options, PluginContext("p", "reactor"))
        self.assertEqual((plugin.options, plugin.context), (options, PluginContext("p", "reactor")))
        unregister("virtual_net")
        self.assertFalse(isSupported("virtual_net"))


class WorkConnectionTests(SynchronousTestCase):
    def handOver(self, extra: str, data: bytes) -> RecordingPlugin:
        proxy = parse_client_config(pluginProxy(extra=extra), "toml").proxies[0]
        plugin = RecordingPlugin(proxy.plugin, PluginContext("p", None))
        self.reactor = MemoryReactorClock()
        self.work = WorkConnection(NewWorkConn(run_id="r"), lambda name: RunningProxy(proxy, plugin), self.reactor, "abc")
        self.transport = StringTransport()
        self.work.makeConnection(self.transport)
        self.transport.clear()
        self.work.dataReceived(encode_message(START) + data)
        return plugin

    def test_plugin_gets_the_plaintext_and_the_addresses(self) -> None:
        codec = ChainCodec([AESCFBCodec(derive_key("abc")), SnappyFramingCodec()])
        plugin = self.handOver('transport.useEncryption = true\ntransport.useCompression = true\n'
                               'transport.proxyProtocolVersion = "v1"', codec.encode(b"GET / HTTP/1.1\r\n\r\n"))
        self.assertIs(self.work.state, WorkState.PLUGIN)
        self.assertEqual(self.reactor.tcpClients, [])  # no local dial
        [(conn, info)] = plugin.handled
        self.assertEqual(info.proxy_protocol_header, b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 6000\r\n")
        upper = AccumulatingProtocol()
        conn.switchTo(upper)
        self.assertEqual(upper.data, b"GET / HTTP/1.1\r\n\r\n")
        upper.transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertEqual(codec.decode(self.transport.value()), b"HTTP/1.1 200 OK\r\n\r\n")

    def test_without_proxy_protocol_no_header(self) -> None:
        plugin = self.handOver("", b"")
        self.assertEqual(plugin.handled[0][1].proxy_protocol_header, b"")


class ServicePluginTests(ServiceTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.built = []

        def build(options, context):
            plugin = RecordingPlugin(options, context)
            self.built.append(plugin)
            return plugin

        register("virtual_net", build)
        self.addCleanup(unregister, "virtual_net")

    def test_plugin_built_once_and_given_work_connections(self) -> None:
        service = self.makeService(proxies=pluginProxy())
        [plugin] = self.built
        self.assertEqual(plugin.context, PluginContext("p", self.reactor))
        conn = self.login()
        self.assertEqual(conn.frps.messages(), [NewProxy(proxy_name="p", proxy_type="tcp", remote_port=6000)])
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="p", remote_addr=":6000")))
        self.assertEqual(service.proxyStatus("p").plugin, "virtual_net")
        for _ in range(2):
            conn.protocol.dataReceived(conn.frps.encrypted(ReqWorkConn()))
            work = FakeConnection(self.reactor)
            work.protocol.dataReceived(encode_message(START) + b"x")
        self.assertEqual(len(plugin.handled), 2)
        self.assertEqual(len(self.built), 1)
        self.successResultOf(service.removeProxy("p"))
        self.assertEqual(plugin.closed, 1)

    def test_stop_closes_plugins_and_start_builds_them_again(self) -> None:
        service = self.makeService(proxies=pluginProxy())
        self.successResultOf(service.stopService())
        self.assertEqual(self.built[0].closed, 1)
        service.startService()
        self.assertEqual(len(self.built), 2)

    def test_added_proxy_gets_its_plugin(self) -> None:
        service = self.makeService(proxies="")
        d = service.addProxy(parse_client_config(pluginProxy(), "toml").proxies[0])
        self.assertEqual(len(self.built), 1)
        d.addErrback(lambda f: f.trap(ConnectionClosed))  # the service stops before frps answers

    def test_plugin_that_cannot_start_is_a_start_error(self) -> None:
        def refuse(options, context):
            raise ConfigError("/etc/missing.crt: cannot read certificate: No such file or directory")

        register("virtual_net", refuse)
        service = self.makeService(proxies="")
        failure = self.failureResultOf(service.addProxy(parse_client_config(pluginProxy(), "toml").proxies[0]), ProxyError)
        text = "plugin virtual_net: /etc/missing.crt: cannot read certificate: No such file or directory"
        self.assertEqual(str(failure.value), text)
        self.assertEqual((service.proxyStatus("p").status, service.proxyStatus("p").err), ("start error", text))
        conn = self.login()
        self.assertEqual(conn.frps.messages(), [])

    def test_udp_proxies_ignore_their_plugin_as_frp(self) -> None:
        logs = LogCapture(self)
        service = self.makeService(proxies=pluginProxy(kind="udp"))
        self.assertEqual(self.built, [])
        self.assertEqual(service.proxyStatus("p").status, "new")
        self.assertIn("[p] plugin virtual_net ignored: udp proxies have no plugins", logs.texts())


class UnsupportedPluginTests(SynchronousTestCase):
    def test_unknown_plugin_type_is_not_sent(self) -> None:
        service = FrpClientService(config(PLAIN, pluginProxy()), MemoryReactorClock())
        status = service.proxyStatus("p")
        self.assertEqual((status.status, status.err), ("start error", "client plugin 'virtual_net' is not supported by this frpc"))
