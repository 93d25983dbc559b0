"""Work connections: NewWorkConn, StartWorkConn, local dial, PROXY header, codecs, splice."""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._work import LOCAL_DIAL_TIMEOUT, RunningProxy, WorkConnection, WorkState
from frptw.config import parse_client_config
from frptw.wire.codec import ChainCodec
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.messages import NewWorkConn, StartWorkConn, encode_message
from frptw.wire.snappy import SnappyFramingCodec

HELLO = NewWorkConn(run_id="r1")
START = StartWorkConn(proxy_name="u1.web", src_addr="10.1.2.3", src_port=40000, dst_addr="10.0.0.1", dst_port=6000)


def proxyConfig(transport: str = ""):
    text = f"""
serverAddr = "127.0.0.1"
auth.token = "abc"
user = "u1"
[[proxies]]
name = "web"
type = "tcp"
localIP = "127.0.0.1"
localPort = 8080
remotePort = 6000
{transport}
"""
    return parse_client_config(text, "toml").proxies[0]


class WorkConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.looked = []

    def connect(self, config):
        def lookup(wireName):
            self.looked.append(wireName)
            return RunningProxy(config) if wireName == "u1.web" else None

        self.work = WorkConnection(HELLO, lookup, self.reactor, "abc")
        self.workTransport = StringTransport()
        self.work.makeConnection(self.workTransport)
        self.assertEqual(self.workTransport.value(), encode_message(HELLO))
        self.workTransport.clear()

    def localDial(self):
        """The pending local dial: (host, port, timeout, factory)."""
        self.reactor.advance(0)
        [(host, port, factory, timeout, _)] = self.reactor.tcpClients
        return host, port, timeout, factory

    def connectLocal(self):
        _, _, _, factory = self.localDial()
        self.local = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
        self.localTransport = StringTransport()
        self.local.makeConnection(self.localTransport)
        self.reactor.advance(0)

    def test_plain_pipe(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(encode_message(START) + b"early bytes")
        self.assertEqual(self.looked, ["u1.web"])
        self.assertEqual(self.localDial()[:3], ("127.0.0.1", 8080, LOCAL_DIAL_TIMEOUT))
        self.work.dataReceived(b", more")
        self.connectLocal()
        self.assertIs(self.work.state, WorkState.SPLICED)
        self.assertEqual(self.localTransport.value(), b"early bytes, more")
        self.local.dataReceived(b"reply")
        self.assertEqual(self.workTransport.value(), b"reply")

    def test_start_work_conn_split_across_reads(self) -> None:
        self.connect(proxyConfig())
        data = encode_message(START) + b"x"
        for i in range(len(data)):
            self.work.dataReceived(data[i:i + 1])
        self.connectLocal()
        self.assertEqual(self.localTransport.value(), b"x")

    def test_proxy_protocol_header_goes_first(self) -> None:
        self.connect(proxyConfig('transport.proxyProtocolVersion = "v1"'))
        self.work.dataReceived(encode_message(START) + b"payload")
        self.connectLocal()
        self.assertEqual(self.localTransport.value(), b"PROXY TCP4 10.1.2.3 10.0.0.1 40000 6000\r\npayload")

    def test_proxy_protocol_skipped_without_source(self) -> None:
        self.connect(proxyConfig('transport.proxyProtocolVersion = "v2"'))
        self.work.dataReceived(encode_message(StartWorkConn(proxy_name="u1.web")) + b"payload")
        self.connectLocal()
        self.assertEqual(self.localTransport.value(), b"payload")

    def test_encryption_and_compression(self) -> None:
        self.connect(proxyConfig("transport.useEncryption = true\ntransport.useCompression = true"))
        frps = ChainCodec([AESCFBCodec(derive_key("abc")), SnappyFramingCodec()])
        self.work.dataReceived(encode_message(START) + frps.encode(b"hello " * 100))
        self.connectLocal()
        self.assertEqual(self.localTransport.value(), b"hello " * 100)
        self.local.dataReceived(b"world " * 100)
        self.assertEqual(frps.decode(self.workTransport.value()), b"world " * 100)

    def test_client_bandwidth_limit_throttles_the_work_side(self) -> None:
        self.connect(proxyConfig('transport.bandwidthLimit = "1KB"'))
        self.work.dataReceived(encode_message(START))
        self.connectLocal()
        self.work.dataReceived(b"z" * 1500)
        self.assertEqual(self.localTransport.value(), b"z" * 1024)
        self.assertEqual(self.workTransport.producerState, "paused")
        self.reactor.advance(476 / 1024)
        self.assertEqual(self.localTransport.value(), b"z" * 1500)
        self.assertEqual(self.workTransport.producerState, "producing")

    def test_server_mode_bandwidth_limit_is_not_applied_here(self) -> None:
        self.connect(proxyConfig('transport.bandwidthLimit = "1KB"\ntransport.bandwidthLimitMode = "server"'))
        self.work.dataReceived(encode_message(START))
        self.connectLocal()
        self.work.dataReceived(b"z" * 5000)
        self.assertEqual(self.workTransport.producerState, "producing")

    def test_refused_work_connection_is_closed(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(encode_message(StartWorkConn(error="token in NewWorkConn doesn't match")))
        self.assertTrue(self.workTransport.disconnecting)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_unknown_proxy_is_closed(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(encode_message(StartWorkConn(proxy_name="u1.other")))
        self.assertTrue(self.workTransport.disconnecting)
        self.assertIs(self.work.state, WorkState.CLOSED)

    def test_local_dial_failure_closes_the_work_connection(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(encode_message(START))
        _, _, _, factory = self.localDial()
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.reactor.advance(0.3)  # HostnameEndpoint reports failures on its attempt tick
        self.assertTrue(self.workTransport.disconnecting)

    def test_work_lost_while_dialing_closes_the_local_connection(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(encode_message(START))
        self.work.connectionLost(Failure(ConnectionDone()))
        self.connectLocal()
        self.assertTrue(self.localTransport.disconnecting)

    def test_garbage_aborts(self) -> None:
        self.connect(proxyConfig())
        self.work.dataReceived(b"\x00" * 9)
        self.assertTrue(self.workTransport.disconnecting)
        self.assertIs(self.work.state, WorkState.CLOSED)
