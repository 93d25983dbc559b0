"""Datagrams over work connections: the channel (framing, bounded queue, pings, idle timeout),
frpc's udp forwarder (one local socket per user, PROXY header, idle close, cleanup) and the
PROXY protocol DGRAM headers."""

import struct

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._udp import LOCAL_IDLE_TIMEOUT, PING_INTERVAL, UDPForwarder
from frptw.client._work import RunningProxy, WorkConnection, WorkState
from frptw.client.proxyprotocol import V2_SIGNATURE, proxy_protocol_header
from frptw.config import parse_client_config
from frptw.transport.datagrams import LOG_INTERVAL, BoundedQueue, DatagramChannel, encode_packet
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.messages import NewWorkConn, Ping, StartWorkConn, UDPAddr, UDPPacket, encode_message
from tests.fakes import UDPReactor
from tests.support import LogCapture, readMessages

USER = ("10.1.2.3", 40000)
OTHER = ("10.9.9.9", 50000)


class Receiver:
    def __init__(self) -> None:
        self.packets = []
        self.closed = []

    def packetReceived(self, payload, user) -> None:
        self.packets.append((payload, user))

    def channelClosed(self, reason) -> None:
        self.closed.append(reason)


class BoundedQueueTests(SynchronousTestCase):
    def test_refuses_and_counts_past_the_limit(self) -> None:
        queue = BoundedQueue(2)
        self.assertTrue(queue.put(b"a"))
        self.assertTrue(queue.put(b"b"))
        self.assertFalse(queue.put(b"c"))
        self.assertEqual((len(queue), queue.dropped), (2, 1))
        self.assertEqual(queue.take(), b"a")
        self.assertTrue(queue.put(b"d"))
        self.assertEqual([queue.take(), queue.take()], [b"b", b"d"])


class DatagramChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.receiver = Receiver()

    def connect(self, **kwargs) -> DatagramChannel:
        self.channel = DatagramChannel(self.receiver, self.clock, **kwargs)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        return self.channel

    def test_packets_both_ways_byte_exact(self) -> None:
        channel = self.connect()
        self.assertIs(self.transport.producer, channel)
        self.assertTrue(channel.sendPacket(b"echo:hi\x00\xff", ("127.0.0.1", 53055)))
        # The reply frpc 0.65 sent in wire-protocol.md §8.
        body = b'{"c":"ZWNobzpoaQD/","r":{"IP":"127.0.0.1","Port":53055,"Zone":""}}'
        self.assertEqual(self.transport.value(), b"u" + struct.pack(">q", len(body)) + body)
        frame = encode_message(UDPPacket(c=b"hi\x00\xff", r=UDPAddr(ip="127.0.0.1", port=53055)))
        channel.dataReceived(frame[:5])
        channel.dataReceived(frame[5:] + encode_message(Ping()) + frame)
        self.assertEqual(self.receiver.packets, [(b"hi\x00\xff", ("127.0.0.1", 53055))] * 2)

    def test_held_writes_leave_as_one_write(self) -> None:
        """The datagrams of one read of a UDP socket: one write (one TLS record, one send)."""
        channel = self.connect()
        writes = []
        self.transport.write = writes.append
        channel.holdWrites()
        for n in range(3):
            channel.sendPacket(b"d%d" % n, USER)
        self.assertEqual(writes, [])
        channel.releaseWrites()
        self.assertEqual(len(writes), 1)
        self.assertEqual([m.c for m in readMessages(writes[0])], [b"d0", b"d1", b"d2"])
        channel.sendPacket(b"alone", USER)  # not holding: at once
        self.assertEqual(len(writes), 2)

    def test_paused_transport_queues_bounded_then_drops(self) -> None:
        channel = self.connect(maxQueued=3)
        channel.pauseProducing()
        for i in range(5):
            channel.sendPacket(b"%d" % i, USER)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual((channel.queued, channel.dropped), (3, 2))
        channel.resumeProducing()
        self.assertEqual([m.c for m in readMessages(self.transport.value())], [b"0", b"1", b"2"])
        self.assertEqual(channel.queued, 0)

    def test_drops_are_counted_and_logged_at_most_once_per_interval(self) -> None:
        """A sustained flood at a peer that does not read: one warning per LOG_INTERVAL with
        the count so far (not one per drop or per pause), ``onDropped`` for every drop, and one
        line when the queue drains."""
        logs = LogCapture(self)
        drops = []
        channel = self.connect(maxQueued=1, onDropped=lambda: drops.append(1))
        channel.pauseProducing()
        for _ in range(1001):
            channel.sendPacket(b"x", USER)
        for _ in range(5):  # a flapping peer: drained a little, full again
            channel.resumeProducing()
            channel.pauseProducing()
            channel.sendPacket(b"x", USER)
            channel.sendPacket(b"x", USER)
        warned = [line for line in logs.texts() if "dropping datagrams" in line]
        self.assertEqual(len(warned), 1)
        self.assertIn("(1 dropped so far)", warned[0])
        self.clock.advance(LOG_INTERVAL)
        channel.sendPacket(b"x", USER)
        warned = [line for line in logs.texts() if "dropping datagrams" in line]
        self.assertEqual(len(warned), 2)
        self.assertIn("(1006 dropped so far)", warned[1])
        self.assertEqual((len(drops), channel.dropped), (1006, 1006))
        channel.resumeProducing()
        self.assertEqual(sum("peer reads again; 1006 datagrams dropped so far" in line for line in logs.texts()), 1)

    def test_resume_stops_flushing_when_paused_again(self) -> None:
        channel = self.connect()
        channel.pauseProducing()
        for i in range(3):
            channel.sendPacket(b"%d" % i, USER)
        self.transport.write = lambda data: (StringTransport.write(self.transport, data), channel.pauseProducing())
        channel.resumeProducing()
        self.assertEqual([m.c for m in readMessages(self.transport.value())], [b"0"])
        self.assertEqual(channel.queued, 2)
        channel.sendPacket(b"3", USER)  # still behind the queue, keeps order
        self.assertEqual(channel.queued, 3)

    def test_queues_until_connected(self) -> None:
        channel = DatagramChannel(self.receiver, self.clock, maxQueued=2)
        for i in range(3):
            channel.sendPacket(b"%d" % i, USER)
        self.assertEqual(channel.dropped, 1)
        transport = StringTransport()
        channel.makeConnection(transport)
        self.assertEqual([m.c for m in readMessages(transport.value())], [b"0", b"1"])

    def test_too_large_is_dropped_and_counted(self) -> None:
        channel = self.connect()
        self.assertFalse(channel.sendPacket(b"x" * 8000, USER))
        self.assertEqual((channel.tooLarge, self.transport.value()), (1, b""))
        self.assertTrue(channel.sendPacket(b"x" * 1400, USER))

    def test_pings(self) -> None:
        self.connect(pingInterval=30)
        self.clock.advance(29.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEqual(readMessages(self.transport.value()), [Ping()])
        self.clock.advance(30)
        self.assertEqual(len(readMessages(self.transport.value())), 2)

    def test_idle_timeout_is_renewed_by_any_message(self) -> None:
        channel = self.connect(idleTimeout=60)
        self.clock.advance(59)
        channel.dataReceived(encode_message(Ping()))
        self.clock.advance(59)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_bad_data_aborts_and_timers_stop(self) -> None:
        channel = self.connect(pingInterval=30, idleTimeout=60)
        channel.dataReceived(b"\x00" * 9)
        self.assertTrue(self.transport.disconnecting)
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.receiver.closed), 1)
        self.assertFalse(channel.sendPacket(b"late", USER))

    def test_packet_without_address_is_dropped(self) -> None:
        channel = self.connect()
        channel.dataReceived(encode_message(UDPPacket(c=b"x")))
        self.assertEqual(self.receiver.packets, [])
        self.assertFalse(self.transport.disconnecting)


def udpConfig(extra: str = "", localIp: str = "127.0.0.1"):
    text = f"""
serverAddr = "127.0.0.1"
auth.token = "abc"
user = "u1"
[[proxies]]
name = "dns"
type = "udp"
localIP = "{localIp}"
localPort = 5353
{extra}
"""
    return parse_client_config(text, "toml").proxies[0]


class UDPForwarderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = UDPReactor()
        self.work = StringTransport()

    def forwarder(self, config=None) -> UDPForwarder:
        self.fwd = UDPForwarder(self.reactor, config or udpConfig(), "127.0.0.1", 1500)
        self.fwd.channel.makeConnection(self.work)
        return self.fwd

    def deliver(self, payload: bytes, user=USER) -> None:
        self.fwd.channel.dataReceived(encode_message(UDPPacket(c=payload, r=UDPAddr(ip=user[0], port=user[1]))))

    def test_one_connected_socket_per_user(self) -> None:
        fwd = self.forwarder()
        self.deliver(b"a")
        self.deliver(b"b")
        self.deliver(b"c", OTHER)
        ports = list(self.reactor.fakeUdpPorts)
        self.assertEqual(len(ports), 2)
        first, second = ports
        self.assertEqual((first.connected, first.interface, first.maxPacketSize), (("127.0.0.1", 5353), "127.0.0.1", 1500))
        self.assertEqual(first.written, [(b"a", None), (b"b", None)])
        self.assertEqual(second.written, [(b"c", None)])
        first.protocol.datagramReceived(b"reply", ("127.0.0.1", 5353))
        [msg] = readMessages(self.work.value())
        self.assertEqual((msg.c, msg.r), (b"reply", UDPAddr(ip=USER[0], port=USER[1])))
        self.assertEqual(set(fwd.sockets), {USER, OTHER})

    def test_idle_socket_closes_and_reopens(self) -> None:
        fwd = self.forwarder()
        self.deliver(b"a")
        [port] = self.reactor.fakeUdpPorts
        self.reactor.advance(LOCAL_IDLE_TIMEOUT - 1)
        port.protocol.datagramReceived(b"reply", None)  # traffic renews the timeout
        self.reactor.advance(LOCAL_IDLE_TIMEOUT - 1)
        self.assertTrue(port.listening)
        self.reactor.advance(1)
        self.assertFalse(port.listening)
        self.assertEqual(fwd.sockets, {})
        self.deliver(b"again")
        self.assertEqual(len(self.reactor.fakeUdpPorts), 2)

    def test_refused_socket_is_forgotten(self) -> None:
        fwd = self.forwarder()
        self.deliver(b"a")
        [port] = self.reactor.fakeUdpPorts
        port.protocol.connectionRefused()
        self.assertFalse(port.listening)
        self.assertEqual(fwd.sockets, {})

    def test_work_connection_loss_closes_every_socket(self) -> None:
        fwd = self.forwarder()
        self.deliver(b"a")
        self.deliver(b"b", OTHER)
        fwd.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([p.listening for p in self.reactor.fakeUdpPorts], [False, False])
        self.assertEqual(fwd.sockets, {})
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.successResultOf(fwd.whenSocketsClosed())

    def test_pings_every_30_s(self) -> None:
        self.forwarder()
        self.reactor.advance(PING_INTERVAL)
        self.assertEqual(readMessages(self.work.value()), [Ping()])

    def test_proxy_protocol_header_on_every_datagram(self) -> None:
        """As frp 0.65's udp.Forwarder: the header goes before each datagram, not only a user's first."""
        self.forwarder(udpConfig('transport.proxyProtocolVersion = "v2"'))
        self.deliver(b"a")
        self.deliver(b"b")
        self.deliver(b"c", OTHER)
        first, second = self.reactor.fakeUdpPorts
        header = proxy_protocol_header("v2", USER[0], USER[1], "127.0.0.1", 5353, transport="udp")
        self.assertEqual(first.written, [(header + b"a", None), (header + b"b", None)])
        [(data, _)] = second.written
        self.assertTrue(data.startswith(V2_SIGNATURE) and data.endswith(b"c"))
        self.assertNotEqual(data, header + b"c")  # the other user's own address

    def test_wildcard_bind_for_non_loopback_service(self) -> None:
        self.fwd = UDPForwarder(self.reactor, udpConfig(localIp="10.0.0.5"), "10.0.0.5", 1500)
        self.fwd.channel.makeConnection(self.work)
        self.deliver(b"a")
        [port] = self.reactor.fakeUdpPorts
        self.assertEqual((port.interface, port.connected), ("", ("10.0.0.5", 5353)))


class WorkConnectionUDPTests(SynchronousTestCase):
    def start(self, config, leftover: bytes = b""):
        self.reactor = UDPReactor()
        self.work = WorkConnection(NewWorkConn(run_id="r1"), lambda name: RunningProxy(config), self.reactor, "abc", 900)
        self.transport = StringTransport()
        self.work.makeConnection(self.transport)
        self.transport.clear()
        self.work.dataReceived(encode_message(StartWorkConn(proxy_name="u1.dns")) + leftover)

    def test_udp_work_connection_forwards_datagrams(self) -> None:
        packet = encode_message(UDPPacket(c=b"q", r=UDPAddr(ip=USER[0], port=USER[1])))
        self.start(udpConfig(), packet)
        self.assertIs(self.work.state, WorkState.FORWARDING)
        self.assertEqual(self.reactor.tcpClients, [])
        [port] = self.reactor.fakeUdpPorts
        self.assertEqual((port.written, port.maxPacketSize), ([(b"q", None)], 900))
        self.work.connectionLost(Failure(ConnectionDone()))
        self.assertIs(self.work.state, WorkState.CLOSED)
        self.assertFalse(port.listening)

    def test_encrypted_udp_work_connection(self) -> None:
        self.start(udpConfig("transport.useEncryption = true"))
        peer = AESCFBCodec(derive_key("abc"))
        self.work.dataReceived(peer.encode(encode_packet(b"secret", USER)))
        [port] = self.reactor.fakeUdpPorts
        port.protocol.datagramReceived(b"answer", None)
        ours = AESCFBCodec(derive_key("abc"))
        [msg] = readMessages(ours.decode(self.transport.value()))
        self.assertEqual((port.written, msg.c), ([(b"secret", None)], b"answer"))


class ProxyProtocolDgramTests(SynchronousTestCase):
    def test_v2_udp4(self) -> None:
        header = proxy_protocol_header("v2", "10.1.2.3", 40000, "127.0.0.1", 5353, transport="udp")
        body = bytes([10, 1, 2, 3, 127, 0, 0, 1]) + struct.pack(">HH", 40000, 5353)
        self.assertEqual(header, V2_SIGNATURE + b"\x21\x12" + struct.pack(">H", 12) + body)

    def test_v2_udp6(self) -> None:
        header = proxy_protocol_header("v2", "2001:db8::1", 1, "::1", 2, transport="udp")
        self.assertEqual(header[12:16], b"\x21\x22\x00\x24")

    def test_v1_has_no_datagram_family(self) -> None:
        self.assertEqual(proxy_protocol_header("v1", "10.1.2.3", 1, "127.0.0.1", 2, transport="udp"), b"PROXY UNKNOWN\r\n")

    def test_unknown_transport(self) -> None:
        self.assertRaises(ValueError, proxy_protocol_header, "v2", "10.1.2.3", 1, transport="sctp")
