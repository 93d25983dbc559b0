"""LayeredProtocol: a codec run as a transport over another transport (StringTransport fakes)."""

from typing import List

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConsumer, IHalfCloseableProtocol, IPushProducer, ITransport
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from frptw.transport.layered import LayeredProtocol, layer
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.errors import ProtocolError
from tests.fakes import FrameCodec


class Recorder(Protocol):
    """Records what the layer hands it."""

    def __init__(self) -> None:
        self.received: List[bytes] = []
        self.lost: List[Failure] = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason=None) -> None:
        self.lost.append(reason)


@implementer(IHalfCloseableProtocol)
class HalfCloseRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.halfClosed: List[str] = []

    def readConnectionLost(self) -> None:
        self.halfClosed.append("read")

    def writeConnectionLost(self) -> None:
        self.halfClosed.append("write")


class HalfClosingTransport(StringTransport):
    """A StringTransport that records a half-close request."""

    writeClosed = False

    def loseWriteConnection(self) -> None:
        self.writeClosed = True


def connect(codec=None, wrapped=None, lower=None):
    codec = codec or FrameCodec()
    wrapped = wrapped if wrapped is not None else Recorder()
    lower = lower or StringTransport()
    layered = LayeredProtocol(codec, wrapped)
    layered.makeConnection(lower)
    return layered, wrapped, lower, codec


class LayeredTransportTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        layered, wrapped, lower, _ = connect()
        for iface in (ITransport, IConsumer, IPushProducer):
            self.assertTrue(verifyObject(iface, layered))
        self.assertIs(wrapped.transport, layered)

    def test_write_encodes(self) -> None:
        layered, wrapped, lower, _ = connect()
        wrapped.transport.write(b"hello")
        self.assertEqual(lower.value(), b"\x00\x05hello")

    def test_write_sequence_encodes_joined_data_once(self) -> None:
        layered, wrapped, lower, codec = connect()
        wrapped.transport.writeSequence([b"head", b"", b"payload"])
        self.assertEqual(codec.encodeCalls, [b"headpayload"])
        self.assertEqual(lower.value(), b"\x00\x0bheadpayload")

    def test_empty_write_sends_nothing(self) -> None:
        layered, wrapped, lower, codec = connect()
        wrapped.transport.write(b"")
        wrapped.transport.writeSequence([])
        self.assertEqual((codec.encodeCalls, lower.value()), ([], b""))

    def test_decoded_data_delivered_and_empty_results_skipped(self) -> None:
        layered, wrapped, lower, codec = connect()
        layered.dataReceived(b"\x00\x03a")
        self.assertEqual(wrapped.received, [])
        self.assertEqual(codec.buffered, 3)
        layered.dataReceived(b"bc\x00\x01d\x00")
        self.assertEqual(wrapped.received, [b"abcd"])

    def test_decode_error_logs_once_and_aborts(self) -> None:
        layered, wrapped, lower, _ = connect()
        with capturedLogs() as events:
            layered.dataReceived(b"\xff\xffjunk")
            layered.dataReceived(b"\x00\x01x")
        self.assertEqual(len(events), 1)
        self.assertIn("frame of 65535 bytes", events[0]["log_format"].format(**events[0]))
        self.assertIn("192.168.1.1", events[0]["log_format"].format(**events[0]))
        self.assertTrue(lower.disconnected)
        self.assertEqual(wrapped.received, [])
        layered.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(wrapped.lost), 1)
        self.assertIsInstance(wrapped.lost[0].value, ProtocolError)

    def test_connection_lost_passes_reason(self) -> None:
        layered, wrapped, lower, _ = connect()
        reason = Failure(ConnectionDone())
        layered.connectionLost(reason)
        self.assertEqual(wrapped.lost, [reason])
        self.assertFalse(layered.connected)

    def test_lose_and_abort_pass_through(self) -> None:
        layered, wrapped, lower, _ = connect()
        wrapped.transport.loseConnection()
        self.assertTrue(lower.disconnecting)
        self.assertTrue(layered.disconnecting)
        self.assertFalse(getattr(lower, "disconnected", False))
        wrapped.transport.abortConnection()
        self.assertTrue(lower.disconnected)

    def test_addresses_come_from_lower_transport(self) -> None:
        layered, wrapped, lower, _ = connect()
        self.assertEqual(layered.getPeer(), lower.getPeer())
        self.assertEqual(layered.getHost(), lower.getHost())


class ProducerPassThroughTests(SynchronousTestCase):
    def test_register_and_unregister_on_lower_transport(self) -> None:
        layered, wrapped, lower, _ = connect()
        producer = StringTransport()
        wrapped.transport.registerProducer(producer, True)
        self.assertEqual((lower.producer, lower.streaming), (producer, True))
        wrapped.transport.unregisterProducer()
        self.assertIsNone(lower.producer)

    def test_pause_resume_stop_reach_lower_transport(self) -> None:
        layered, wrapped, lower, _ = connect()
        layered.pauseProducing()
        self.assertEqual(lower.producerState, "paused")
        layered.resumeProducing()
        self.assertEqual(lower.producerState, "producing")
        layered.stopProducing()
        self.assertEqual(lower.producerState, "stopped")

    def test_stacked_layers_pass_pause_to_the_bottom(self) -> None:
        bottom = StringTransport()
        _, upperLayer, _, _ = connect(lower=bottom, wrapped=LayeredProtocol(FrameCodec(), Recorder()))
        top = upperLayer.wrappedProtocol
        top.transport.pauseProducing()
        self.assertEqual(bottom.producerState, "paused")
        top.transport.write(b"xy")
        self.assertEqual(bottom.value(), b"\x00\x04\x00\x02xy")


class HalfCloseTests(SynchronousTestCase):
    def test_read_eof_to_half_closeable_protocol(self) -> None:
        layered, wrapped, lower, _ = connect(wrapped=HalfCloseRecorder())
        layered.readConnectionLost()
        layered.writeConnectionLost()
        self.assertEqual(wrapped.halfClosed, ["read", "write"])
        self.assertFalse(lower.disconnecting)

    def test_read_eof_closes_for_other_protocols(self) -> None:
        layered, wrapped, lower, _ = connect()
        layered.readConnectionLost()
        layered.writeConnectionLost()
        self.assertTrue(lower.disconnecting)

    def test_lose_write_connection_passes_through(self) -> None:
        layered, wrapped, lower, _ = connect(lower=HalfClosingTransport())
        wrapped.transport.loseWriteConnection()
        self.assertTrue(lower.writeClosed)


class LayerHelperTests(SynchronousTestCase):
    def test_held_then_leftover_bytes_are_decoded_in_order(self) -> None:
        below = SwitchableProtocol()
        lower = StringTransport()
        below.makeConnection(lower)
        below.dataReceived(b"\x00\x02ab\x00")
        top = layer(below, FrameCodec(), leftover=b"\x01c\x00\x01d")
        recorder = Recorder()
        top.switchTo(recorder)
        self.assertEqual(b"".join(recorder.received), b"abcd")
        recorder.transport.write(b"up")
        self.assertEqual(lower.value(), b"\x00\x02up")
        self.assertIsInstance(recorder.transport, LayeredProtocol)

    def test_connection_lost_before_layering_reaches_top(self) -> None:
        below = SwitchableProtocol()
        below.makeConnection(StringTransport())
        reason = Failure(ConnectionDone())
        below.connectionLost(reason)
        top = layer(below, FrameCodec())
        self.assertTrue(top.lost)
        recorder = Recorder()
        top.switchTo(recorder)
        self.assertEqual(recorder.lost, [reason])

    def test_paused_switchable_is_resumed_after_layering(self) -> None:
        below = SwitchableProtocol(pauseOnConnect=True)
        lower = StringTransport()
        below.makeConnection(lower)
        self.assertEqual(lower.producerState, "paused")
        layer(below, FrameCodec())
        self.assertEqual(lower.producerState, "producing")


class BoundedBufferTests(SynchronousTestCase):
    """The layer keeps nothing itself: what it holds is the codec's one incomplete frame."""

    @given(st.binary(max_size=5000), st.lists(st.integers(min_value=1, max_value=700), max_size=20))
    def test_any_chunking_round_trips(self, payload: bytes, cuts: List[int]) -> None:
        sender, _, wire, _ = connect()
        sender.write(payload)
        encoded = wire.value()
        receiver, wrapped, _, codec = connect()
        position = 0
        for cut in cuts + [len(encoded)]:
            receiver.dataReceived(encoded[position : position + cut])
            position += cut
            self.assertLessEqual(codec.buffered, 2 + codec.limit)
        self.assertEqual(b"".join(wrapped.received), payload)
        self.assertEqual(codec.buffered, 0)

    def test_layer_holds_no_outgoing_bytes(self) -> None:
        layered, wrapped, lower, _ = connect()
        layered.pauseProducing()
        for _ in range(100):
            wrapped.transport.write(b"x" * 1000)
        self.assertEqual(len(lower.value()), 100 * 1002)
        self.assertEqual(
            {k for k, v in vars(layered).items() if isinstance(v, (bytes, bytearray, list))}, set()
        )
