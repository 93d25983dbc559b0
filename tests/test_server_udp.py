"""The frps udp proxy (frptw.server.udp, wire-protocol.md §8).

Unit tests drive :class:`UDPProxy` with a ``task.Clock``, a fake UDP reactor and work
connections on ``StringTransport``; in-process tests run FrpServerService on 127.0.0.1 with a
raw frp client (:mod:`tests.rawfrpc`) and with frptw's own frpc.  The real Go frpc
is in tests.test_server_udp_interop.
"""

import socket

from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.errors import ConnectionClosed, NoWorkConnection, ProxyError
from frptw.server.ports import PortAllocator
from frptw.server.udp import FIRST_WORK_CONN_DELAY, READ_TIMEOUT, RETRY_DELAY, UDPProxy
from frptw.transport.datagrams import MAX_QUEUED
from frptw.transport.switch import SwitchableProtocol
from frptw.wire import messages as m
from frptw.wire.codec import data_plane_codec
from frptw.wire.crypto import derive_key
from tests.fakes import FakeControl
from tests.rawfrpc import TOKEN, RawClientMixin, RawConn
from tests.support import free_port, readMessages, until
from tests.udptraffic import udp_exchange, udpEcho

KEY = derive_key(TOKEN)


# -- fakes -------------------------------------------------------------------------------------
class FakeUDPPort:
    def __init__(self, port):
        self.port = port
        self.written = []
        self.stopped = False

    def write(self, datagram, addr):
        self.written.append((datagram, addr))

    def stopListening(self):
        self.stopped = True


class FakeUDPReactor:
    """listenUDP that binds nothing; ports in ``busy`` are refused as the OS would."""

    def __init__(self, busy=()):
        self.busy = set(busy)
        self.bound = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        if port in self.busy:
            raise CannotListenError(interface, port, OSError("address in use"))
        transport = FakeUDPPort(port)
        protocol.transport = transport
        self.bound.append((port, interface, maxPacketSize))
        return transport


def workConnection():
    work = SwitchableProtocol()
    work.makeConnection(StringTransport())
    return work


def packet(payload, host, port):
    return m.encode_message(m.UDPPacket(c=payload, r=m.UDPAddr(ip=host, port=port)))


class UDPProxyTests(SynchronousTestCase):
    def makeProxy(self, remote_port=30001, allowed=(), busy=(), packetSize=1500, **fields):
        self.clock = Clock()
        self.control = FakeControl(self.clock, immediate=False)
        self.reactor = FakeUDPReactor(busy)
        self.ports = PortAllocator(list(allowed), self.clock)
        request = m.NewProxy(proxy_name="u1", proxy_type="udp", remote_port=remote_port, **fields)
        proxy = UDPProxy(self.control, request, KEY, self.reactor, self.ports, "127.0.0.1", packetSize)
        self.udp = self.reactor.bound and proxy.listeners[0]
        return proxy

    def attach(self):
        """Let the first request go out and answer it with a fresh work connection."""
        self.clock.advance(FIRST_WORK_CONN_DELAY)
        self.assertEqual(len(self.control.pending), 1)
        work = workConnection()
        self.control.pending.pop().callback(work)
        return work

    def test_binds_the_remote_port_with_the_packet_size(self):
        proxy = self.makeProxy(remote_port=30001, packetSize=9000)
        self.assertEqual(self.reactor.bound, [(30001, "127.0.0.1", 9000)])
        self.assertEqual(proxy.remote_addr, ":30001")
        self.assertEqual(self.ports.used, {30001: "u1"})

    def test_remote_port_zero_takes_an_allowed_free_port(self):
        proxy = self.makeProxy(remote_port=0, allowed=[(30010, 30011)], busy={30010})
        self.assertEqual(proxy.remote_addr, ":30011")

    def test_port_errors_are_frps_texts(self):
        """frp's udp proxy wraps the port manager's error (its tcp proxy does not)."""
        self.assertRaisesRegex(ProxyError, "^acquire port 30001 error: port not allowed$", self.makeProxy,
                               remote_port=30001, allowed=[(30010, 30011)])
        self.assertRaisesRegex(ProxyError, "^acquire port 30001 error: port unavailable$", self.makeProxy,
                               remote_port=30001, busy={30001})

    def test_one_work_connection_after_the_delay_with_only_the_proxy_name(self):
        self.makeProxy()
        self.clock.advance(FIRST_WORK_CONN_DELAY - 0.01)
        self.assertEqual(self.control.pending, [])
        work = self.attach()
        self.assertEqual(readMessages(work.transport.value()), [m.StartWorkConn(proxy_name="u1")])
        self.assertEqual(work.transport.value()[9:], b'{"proxy_name":"u1"}')
        self.clock.advance(3600)
        self.assertEqual(self.control.pending, [])

    def test_datagrams_carry_the_user_address_both_ways(self):
        proxy = self.makeProxy()
        work = self.attach()
        work.transport.clear()
        proxy.userDatagram(b"hi\x00\xff", ("127.0.0.1", 53055))
        body = b'{"c":"aGkA/w==","r":{"IP":"127.0.0.1","Port":53055,"Zone":""}}'  # as captured from frp 0.65
        self.assertEqual(work.transport.value(), b"u" + len(body).to_bytes(8, "big") + body)
        work.dataReceived(packet(b"echo:hi", "127.0.0.1", 53055) + packet(b"other", "10.1.2.3", 7))
        self.assertEqual(self.udp.written, [(b"echo:hi", ("127.0.0.1", 53055)), (b"other", ("10.1.2.3", 7))])

    def test_datagrams_wait_for_the_work_connection_in_a_bounded_queue(self):
        proxy = self.makeProxy()
        for i in range(MAX_QUEUED + 10):
            proxy.userDatagram(i.to_bytes(2, "big"), ("127.0.0.1", 40000))
        self.assertEqual(proxy.channel.dropped, 10)
        work = self.attach()
        messages = readMessages(work.transport.value())
        self.assertEqual(messages[0], m.StartWorkConn(proxy_name="u1"))
        self.assertEqual([p.c for p in messages[1:]], [i.to_bytes(2, "big") for i in range(MAX_QUEUED)])

    def test_too_large_datagram_is_dropped_not_raised(self):
        proxy = self.makeProxy(packetSize=65507)
        work = self.attach()
        work.transport.clear()
        proxy.userDatagram(b"x" * 9000, ("127.0.0.1", 40000))
        proxy.userDatagram(b"small", ("127.0.0.1", 40000))
        self.assertEqual([p.c for p in readMessages(work.transport.value())], [b"small"])
        self.assertEqual(proxy.channel.tooLarge, 1)

    def test_unsendable_reply_is_ignored(self):
        self.makeProxy()
        write = self.udp.write

        def refuseOne(datagram, addr):
            if addr[0] == "10.9.9.9":
                raise OSError(101, "network unreachable")
            write(datagram, addr)

        self.udp.write = refuseOne
        work = self.attach()
        work.dataReceived(packet(b"x", "10.9.9.9", 9) + packet(b"y", "127.0.0.1", 9))
        self.assertFalse(work.transport.disconnecting)
        self.assertEqual(self.udp.written, [(b"y", ("127.0.0.1", 9))])

    def test_read_deadline_is_renewed_by_every_message(self):
        proxy = self.makeProxy()
        work = self.attach()
        self.clock.advance(READ_TIMEOUT - 1)
        work.dataReceived(m.encode_message(m.Ping()))
        self.clock.advance(READ_TIMEOUT - 1)
        work.dataReceived(packet(b"r", "127.0.0.1", 5))
        self.clock.advance(READ_TIMEOUT - 1)
        self.assertFalse(work.transport.disconnecting)
        self.assertEqual(self.control.pending, [])
        self.clock.advance(1)
        self.assertTrue(work.transport.disconnecting)
        self.assertEqual(proxy.workConnections, 1)

    def test_lost_work_connection_is_replaced_at_once(self):
        proxy = self.makeProxy()
        work = self.attach()
        work.connectionLost(Failure(ConnectionClosed("gone")))
        self.assertEqual(len(self.control.pending), 1)
        proxy.userDatagram(b"meanwhile", ("127.0.0.1", 40000))
        second = workConnection()
        self.control.pending.pop().callback(second)
        messages = readMessages(second.transport.value())
        self.assertEqual(messages, [m.StartWorkConn(proxy_name="u1"),
                                    m.UDPPacket(c=b"meanwhile", r=m.UDPAddr(ip="127.0.0.1", port=40000))])
        self.assertEqual(proxy.workConnections, 2)

    def test_failed_request_is_retried_every_second(self):
        self.makeProxy()
        self.clock.advance(FIRST_WORK_CONN_DELAY)
        self.control.pending.pop().errback(NoWorkConnection("timeout trying to get work connection"))
        self.clock.advance(RETRY_DELAY - 0.01)
        self.assertEqual(self.control.pending, [])
        self.clock.advance(0.01)
        self.control.pending.pop().errback(NoWorkConnection("control is already closed"))
        self.clock.advance(RETRY_DELAY)
        self.assertEqual(len(self.control.pending), 1)

    def test_stale_pooled_connection_is_skipped(self):
        self.makeProxy()
        self.control.poolCount = 1
        self.clock.advance(FIRST_WORK_CONN_DELAY)
        stale = SwitchableProtocol()
        stale.makeConnection(StringTransport())
        stale.connectionLost(Failure(ConnectionClosed("gone")))
        self.control.pending.pop().callback(stale)
        self.assertEqual(stale.transport.value(), b"")
        fresh = workConnection()
        self.control.pending.pop().callback(fresh)
        self.assertEqual(readMessages(fresh.transport.value()), [m.StartWorkConn(proxy_name="u1")])

    def test_encryption_and_compression_wrap_the_message_stream(self):
        proxy = self.makeProxy(use_encryption=True, use_compression=True)
        work = self.attach()
        start = m.encode_message(m.StartWorkConn(proxy_name="u1"))
        self.assertEqual(work.transport.value(), start)
        work.transport.clear()
        proxy.userDatagram(b"secret", ("127.0.0.1", 41000))
        wire = work.transport.value()
        self.assertNotIn(b"UDP", wire)
        self.assertNotIn(b"c2VjcmV0", wire)  # base64 of the payload
        frpc = data_plane_codec(KEY, True, True)
        self.assertEqual(readMessages(frpc.decode(wire)),
                         [m.UDPPacket(c=b"secret", r=m.UDPAddr(ip="127.0.0.1", port=41000))])
        work.dataReceived(frpc.encode(packet(b"reply", "127.0.0.1", 41000)))
        self.assertEqual(self.udp.written, [(b"reply", ("127.0.0.1", 41000))])

    def test_bad_data_from_frpc_closes_only_the_work_connection(self):
        proxy = self.makeProxy()
        work = self.attach()
        work.dataReceived(b"\x00" * 20)
        self.assertTrue(work.transport.disconnecting)
        work.connectionLost(Failure(ConnectionClosed("aborted")))
        self.assertEqual(len(self.control.pending), 1)
        self.assertFalse(self.udp.stopped)
        self.assertIn(proxy.remote_port, self.ports.used)

    def test_close_releases_port_and_work_connection(self):
        proxy = self.makeProxy()
        work = self.attach()
        proxy.close()
        self.assertTrue(self.udp.stopped)
        self.assertTrue(work.transport.disconnecting)
        self.assertEqual(self.ports.used, {})
        work.connectionLost(Failure(ConnectionClosed("closed")))
        self.clock.advance(10)
        self.assertEqual(self.control.pending, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_withdraws_pending_request_and_timers(self):
        proxy = self.makeProxy()
        proxy.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        proxy2 = self.makeProxy(remote_port=30002)
        self.clock.advance(FIRST_WORK_CONN_DELAY)
        self.assertEqual(len(self.control.pending), 1)
        proxy2.close()
        self.assertEqual(self.control.pending, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_server_bandwidth_limit_applies_to_the_work_connection(self):
        proxy = self.makeProxy(bandwidth_limit="1KB", bandwidth_limit_mode="server")
        work = self.attach()
        work.transport.clear()
        for i in range(4):
            proxy.userDatagram(b"x" * 500, ("127.0.0.1", 41000))
        sent = len(work.transport.value())
        self.assertLess(sent, 4 * 500)
        self.clock.pump([0.1] * 50)  # each chunk's wait starts when the previous one went
        self.assertEqual(len(readMessages(work.transport.value())), 4)


# -- real sockets --------------------------------------------------------------------------------
class UDPUser(DatagramProtocol):
    def __init__(self):
        self.received = defer.DeferredQueue()

    def datagramReceived(self, data, addr):
        self.received.put((data, addr))

    async def next(self, timeout=5):
        d = self.received.get()
        d.addTimeout(timeout, reactor)
        return await d


class UDPServiceTests(RawClientMixin, TestCase):
    """frps with a raw frp client: the §8 exchange byte by byte, over real sockets."""

    timeout = 60

    async def udpWork(self, control, run_id):
        await control.next(m.ReqWorkConn, timeout=5)
        work = await self.connect(RawConn())
        work.send(m.NewWorkConn(run_id=run_id))
        start = await work.next(m.StartWorkConn)
        return work, start

    async def rawMessages(self, work, count, timeout=5):
        await until(lambda: len(readMessages(work.raw)) >= count,
                    lambda: f"{count} message(s) on the work connection; got {readMessages(work.raw)}", timeout)
        return readMessages(work.raw)

    async def test_udp_proxy_carries_datagrams_both_ways(self):
        await self.startServer()
        control, resp = await self.login()
        remote = free_port(socket.SOCK_DGRAM)
        answer = await self.newProxy(control, "u1", proxy_type="udp", remote_port=remote)
        self.assertEqual((answer.remote_addr, answer.error), (f":{remote}", ""))
        work, start = await self.udpWork(control, resp.run_id)
        self.assertEqual(start, m.StartWorkConn(proxy_name="u1"))

        user = UDPUser()
        port = reactor.listenUDP(0, user, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        user.transport.write(b"hi\x00\xff", ("127.0.0.1", remote))
        [received] = await self.rawMessages(work, 1)
        self.assertEqual(received, m.UDPPacket(c=b"hi\x00\xff", r=m.UDPAddr(ip="127.0.0.1",
                                                                          port=port.getHost().port)))
        # Replies go to r, whatever it is; an unusable r is skipped without harm.
        work.transport.write(packet(b"nowhere", "::1", 5) + packet(b"zero", "127.0.0.1", 0)
                             + packet(b"echo:hi", "127.0.0.1", port.getHost().port))
        data, addr = await user.next()
        self.assertEqual((data, addr), (b"echo:hi", ("127.0.0.1", remote)))
        self.assertIn("u1", self.service.proxies())

    async def test_datagrams_are_read_with_udp_packet_size(self):
        await self.startServer("udpPacketSize = 100\n")
        control, resp = await self.login()
        remote = free_port(socket.SOCK_DGRAM)
        await self.newProxy(control, "u1", proxy_type="udp", remote_port=remote)
        work, _ = await self.udpWork(control, resp.run_id)
        user = UDPUser()
        port = reactor.listenUDP(0, user, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        user.transport.write(bytes(range(200)), ("127.0.0.1", remote))
        [received] = await self.rawMessages(work, 1)
        self.assertEqual(received.c, bytes(range(100)))

    async def test_udp_ports_count_and_close(self):
        await self.startServer("maxPortsPerClient = 1\n")
        control, resp = await self.login()
        remote = free_port(socket.SOCK_DGRAM)
        self.assertEqual((await self.newProxy(control, "u1", proxy_type="udp", remote_port=remote)).error, "")
        refused = await self.newProxy(control, "t1", proxy_type="tcp", remote_port=free_port())
        self.assertEqual(refused.error, "exceed the max_ports_per_client")
        work, _ = await self.udpWork(control, resp.run_id)
        control.send(m.CloseProxy(proxy_name="u1"))
        await work.closed
        # The port is free again: the OS lets us bind it.
        probe = reactor.listenUDP(remote, DatagramProtocol(), interface="127.0.0.1")
        await probe.stopListening()

    async def test_frptw_frpc_udp_proxy(self):
        service = await self.startServer()
        for encryption, compression in ((False, False), (True, True)):
            remote = free_port(socket.SOCK_DGRAM)
            name = f"u{int(encryption)}"
            config = parse_client_config(
                f'serverAddr = "127.0.0.1"\nserverPort = {self.port}\nauth.token = "{TOKEN}"\n'
                f"transport.tcpMux = false\n"
                f'[[proxies]]\nname = "{name}"\ntype = "udp"\nlocalIP = "127.0.0.1"\n'
                f"localPort = {udpEcho(self)}\nremotePort = {remote}\n"
                f"transport.useEncryption = {str(encryption).lower()}\n"
                f"transport.useCompression = {str(compression).lower()}\n",
                "toml",
            )
            client = FrpClientService(config, reactor=reactor)
            client.startService()
            self.addCleanup(client.stopService)
            await until(lambda: name in service.proxies(), f"frps to register {name}")
            self.assertEqual(await udp_exchange(reactor, remote, 300, lossTimeout=10.0), (300, 0, 0))
