"""The small shared helpers under frptw.transport: addresses as frp writes them, and the one way
a delayed call is stopped."""

import socket

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.transport.addresses import datagramHost, describePeer, hostPort, unmappedHost
from frptw.transport.timers import cancelCall, resetCall


class AddressTests(SynchronousTestCase):
    def test_ip_addresses(self) -> None:
        address = IPv4Address("TCP", "10.1.2.3", 40000)
        self.assertEqual(hostPort(address), ("10.1.2.3", 40000))
        self.assertEqual(describePeer(StringTransport(peerAddress=address)), "10.1.2.3:40000")
        address6 = IPv6Address("TCP", "::1", 40000)
        self.assertEqual(describePeer(StringTransport(peerAddress=address6)), "[::1]:40000")  # as Go prints it

    def test_other_addresses(self) -> None:
        """frp sends an empty address and port 0 when it has none."""
        self.assertEqual(hostPort(None), ("", 0))
        self.assertEqual(hostPort(UNIXAddress(b"/tmp/s")), ("", 0))
        self.assertIn("UNIXAddress", describePeer(StringTransport(peerAddress=UNIXAddress(b"/tmp/s"))))


    def test_dual_stack_datagram_hosts(self) -> None:
        """A ``::`` socket's IPv4 peer is reported and written to as Go does it."""
        self.assertEqual(unmappedHost("::ffff:192.0.2.1"), "192.0.2.1")
        for host in ("::ffff:c000:201", "::1", "2001:db8::1", "192.0.2.1"):
            self.assertEqual(unmappedHost(host), host)
        self.assertEqual(datagramHost("192.0.2.1", socket.AF_INET6), "::ffff:192.0.2.1")
        self.assertEqual(datagramHost("2001:db8::1", socket.AF_INET6), "2001:db8::1")
        self.assertEqual(datagramHost("192.0.2.1", socket.AF_INET), "192.0.2.1")
        self.assertEqual(datagramHost("192.0.2.1", None), "192.0.2.1")


class CancelCallTests(SynchronousTestCase):
    def test_any_state(self) -> None:
        clock = Clock()
        ran = []
        pending, done, cancelled = (clock.callLater(delay, ran.append, delay) for delay in (2, 1, 3))
        clock.advance(1)
        cancelled.cancel()
        for call in (None, pending, done, cancelled):
            cancelCall(call)
        clock.advance(10)
        self.assertEqual(ran, [1])
        self.assertEqual(clock.getDelayedCalls(), [])


class ResetCallTests(SynchronousTestCase):
    def test_pending_call_moves(self) -> None:
        clock = Clock()
        ran = []
        call = clock.callLater(2, ran.append, "idle")
        clock.advance(1.5)
        resetCall(call, 2)
        clock.advance(1.9)
        self.assertEqual(ran, [])
        clock.advance(0.1)
        self.assertEqual(ran, ["idle"])

    def test_finished_or_missing_calls_are_left_alone(self) -> None:
        clock = Clock()
        done, cancelled = clock.callLater(1, lambda: None), clock.callLater(1, lambda: None)
        cancelled.cancel()
        clock.advance(1)
        for call in (None, done, cancelled):
            resetCall(call, 5)
        self.assertEqual(clock.getDelayedCalls(), [])

