"""SwitchableProtocol: hands its transport and held bytes to another protocol."""

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.transport.switch import SwitchableProtocol


class Recorder(Protocol):
    def __init__(self):
        self.data = []
        self.lost = None
        self.readLost = False

    def dataReceived(self, data):
        self.data.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class SwitchableProtocolTests(SynchronousTestCase):
    def connected(self, **kw):
        proto = SwitchableProtocol(**kw)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_held_bytes_then_leftover_reach_new_protocol(self):
        proto, transport = self.connected()
        proto.dataReceived(b"ab")
        proto.dataReceived(b"cd")
        target = Recorder()
        proto.switchTo(target, leftover=b"ef")
        self.assertIs(target.transport, transport)
        self.assertEqual(b"".join(target.data), b"abcdef")
        proto.dataReceived(b"gh")
        self.assertEqual(target.data[-1], b"gh")

    def test_pauses_over_limit_and_resumes_on_switch(self):
        proto, transport = self.connected(bufferLimit=4)
        proto.dataReceived(b"1234")
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"5")
        self.assertEqual(transport.producerState, "paused")
        proto.switchTo(Recorder())
        self.assertEqual(transport.producerState, "producing")

    def test_pause_on_connect(self):
        proto, transport = self.connected(pauseOnConnect=True)
        self.assertEqual(transport.producerState, "paused")
        proto.switchTo(Recorder())
        self.assertEqual(transport.producerState, "producing")

    def test_loss_before_switch_is_delivered_after_data(self):
        proto, transport = self.connected()
        proto.dataReceived(b"x")
        reason = Failure(ConnectionDone())
        proto.connectionLost(reason)
        self.assertTrue(proto.lost)
        target = Recorder()
        proto.switchTo(target)
        self.assertEqual(target.data, [b"x"])
        self.assertIs(target.lost, reason)

    def test_loss_after_switch_is_forwarded(self):
        proto, transport = self.connected()
        target = Recorder()
        proto.switchTo(target)
        reason = Failure(ConnectionDone())
        proto.connectionLost(reason)
        self.assertIs(target.lost, reason)

    def test_read_loss_closes_when_target_cannot_half_close(self):
        proto, transport = self.connected()
        proto.readConnectionLost()
        proto.switchTo(Recorder())
        self.assertTrue(transport.disconnecting)

    def test_switch_twice_is_an_error(self):
        proto, transport = self.connected()
        proto.switchTo(Recorder())
        self.assertRaises(RuntimeError, proto.switchTo, Recorder())

    def test_pause_requested_during_handover_sticks(self):
        """The new protocol may pause the transport while taking the held bytes."""

        class Pauser(Recorder):
            def dataReceived(self, data):
                super().dataReceived(data)
                self.transport.pauseProducing()

        proto, transport = self.connected(bufferLimit=4)
        proto.dataReceived(b"12345")
        self.assertEqual(transport.producerState, "paused")
        target = Pauser()
        proto.switchTo(target)
        self.assertEqual(target.data, [b"12345"])
        self.assertEqual(transport.producerState, "paused")
