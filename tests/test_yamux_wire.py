"""Tests for the sans-IO yamux session (frptw.wire.yamux): byte-exact frames from real frp,
header codec, two-sided in-memory sessions, and hypothesis on round trips and garbage."""

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.errors import ProtocolError
from frptw.wire.yamux import (
    HEADER_SIZE,
    INITIAL_STREAM_WINDOW,
    ConnectionTerminated,
    DataReceived,
    Flag,
    FrameHeader,
    FrameType,
    GoAwayReceived,
    OpenLimitReached,
    PingReceived,
    PongReceived,
    SessionClosedError,
    StreamAcknowledged,
    StreamClosedError,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
    YamuxConnection,
    decode_header,
    encode_header,
)

MIB = 1024 * 1024
FRP_DELTA = 0x5C0000


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def frame(type: int, flags: int, stream_id: int, length: int, payload: bytes = b"") -> bytes:
    return encode_header(type, flags, stream_id, length) + payload


def data_events(events, stream_id=None):
    """Concatenated payload of the DataReceived events (optionally for one stream)."""
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and stream_id in (None, e.stream_id))


def without_data(events):
    return [e for e in events if not isinstance(e, DataReceived)]


class Pair:
    """A client and a server session wired back to back in memory."""

    def __init__(self, client_window=6 * MIB, server_window=6 * MIB, backlog=256):
        self.client = YamuxConnection(True, max_stream_window=client_window, accept_backlog=backlog)
        self.server = YamuxConnection(False, max_stream_window=server_window, accept_backlog=backlog)

    def to_server(self):
        return self.server.receive_data(self.client.data_to_send())

    def to_client(self):
        return self.client.receive_data(self.server.data_to_send())

    def open_accepted(self):
        stream_id = self.client.open_stream()
        events = self.to_server()
        assert StreamOpened(stream_id) in events, events
        self.server.accept_stream(stream_id)
        self.to_client()
        return stream_id


class HeaderCodecTests(SynchronousTestCase):
    def test_captured_syn(self):
        """frpc's first 12 bytes with tcpMux on (wire-protocol §3.6)."""
        self.assertEqual(
            encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, FRP_DELTA), h("00 01 0001 00000001 005c0000")
        )
        self.assertEqual(
            decode_header(h("00 01 0002 00000001 005c0000")),
            FrameHeader(0, FrameType.WINDOW_UPDATE, Flag.ACK, 1, FRP_DELTA),
        )

    def test_decode_at_offset_without_validation(self):
        data = b"xx" + h("07 09 ffff 01020304 0a0b0c0d")
        self.assertEqual(decode_header(data, 2), FrameHeader(7, 9, 0xFFFF, 0x01020304, 0x0A0B0C0D))

    def test_short_header(self):
        self.assertRaises(struct.error, decode_header, b"\x00" * (HEADER_SIZE - 1))

    @given(
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.integers(0, 0xFFFFFFFF),
    )
    def test_round_trip(self, version, type, flags, stream_id, length):
        encoded = encode_header(type, flags, stream_id, length, version)
        self.assertEqual(len(encoded), HEADER_SIZE)
        self.assertEqual(decode_header(encoded), (version, type, flags, stream_id, length))


class FrpBytesTests(SynchronousTestCase):
    """Byte-exact behaviour against frp 0.65 captures."""

    def test_open_and_login(self):
        client = YamuxConnection(True)
        login = b"o" + bytes(8) + b"x" * 154
        stream_id = client.open_stream()
        self.assertEqual(stream_id, 1)
        self.assertEqual(client.send_data(stream_id, login), len(login))
        self.assertEqual(
            client.data_to_send(), h("00 01 0001 00000001 005c0000") + h("00 00 0000 00000001 000000a3") + login
        )
        self.assertEqual(client.data_to_send(), b"")
        self.assertEqual(client.open_stream(), 3)

    def test_server_ack_after_buffered_login(self):
        """frps ACKs with 0x5c0000 although the Login already arrived and is still buffered."""
        server = YamuxConnection(False)
        events = server.receive_data(h("00 01 0001 00000001 005c0000") + h("00 00 0000 00000001 000000a3") + b"L" * 163)
        self.assertEqual(without_data(events), [StreamOpened(1), WindowUpdated(1, FRP_DELTA)])
        self.assertEqual(data_events(events), b"L" * 163)
        server.accept_stream(1)
        self.assertEqual(server.data_to_send(), h("00 01 0002 00000001 005c0000"))

    def test_ack_counts_consumed_bytes(self):
        """delta = max - buffered - recvWindow: bytes consumed before the accept are granted back."""
        server = YamuxConnection(False)
        server.receive_data(h("00 01 0001 00000001 005c0000") + h("00 00 0000 00000001 000000a3") + b"L" * 163)
        server.consumed(1, 163)
        self.assertEqual(server.data_to_send(), b"")
        server.accept_stream(1)
        self.assertEqual(server.data_to_send(), encode_header(1, Flag.ACK, 1, FRP_DELTA + 163))

    def test_fin_answer(self):
        """After the client FINs the control stream, frps answers with a bare FIN."""
        pair = Pair()
        stream_id = pair.open_accepted()
        pair.client.close_stream(stream_id)
        self.assertEqual(pair.client.data_to_send(), h("00 01 0004 00000001 00000000"))
        self.assertEqual(pair.server.receive_data(h("00 01 0004 00000001 00000000")), [StreamEnded(1)])
        pair.server.close_stream(stream_id)
        self.assertEqual(pair.server.data_to_send(), h("00 01 00 04 00 00 00 01 00 00 00 00"))
        self.assertFalse(pair.server.has_stream(1))

    def test_ping_frames(self):
        conn = YamuxConnection(True)
        self.assertEqual([conn.ping(), conn.ping()], [0, 1])
        self.assertEqual(conn.data_to_send(), h("00 02 0001 00000000 00000000 00 02 0001 00000000 00000001"))
        events = conn.receive_data(h("00 02 0001 00000000 00000007 00 02 0002 00000000 00000001"))
        self.assertEqual(events, [PingReceived(7), PongReceived(1)])
        self.assertEqual(conn.data_to_send(), h("00 02 0002 00000000 00000007"))

    def test_reset_and_go_away_frames(self):
        pair = Pair()
        stream_id = pair.open_accepted()
        pair.client.reset_stream(stream_id)
        self.assertEqual(pair.client.data_to_send(), h("00 01 0008 00000001 00000000"))
        pair.client.go_away()
        self.assertEqual(pair.client.data_to_send(), h("00 03 0000 00000000 00000000"))


class StreamLifeTests(SynchronousTestCase):
    def test_exchange_and_both_fins(self):
        pair = Pair()
        stream_id = pair.client.open_stream()
        pair.client.send_data(stream_id, b"hello")
        events = pair.to_server()
        self.assertEqual(events[0], StreamOpened(stream_id))
        self.assertEqual(data_events(events), b"hello")
        pair.server.accept_stream(stream_id)
        pair.server.send_data(stream_id, b"world")
        events = pair.to_client()
        self.assertEqual(without_data(events), [StreamAcknowledged(stream_id), WindowUpdated(stream_id, FRP_DELTA)])
        self.assertEqual(data_events(events), b"world")
        pair.server.close_stream(stream_id)
        self.assertEqual(pair.to_client(), [StreamEnded(stream_id)])
        self.assertTrue(pair.client.has_stream(stream_id))
        self.assertEqual(pair.client.send_data(stream_id, b"still"), 5)  # half-close: we may write
        pair.client.close_stream(stream_id)
        self.assertFalse(pair.client.has_stream(stream_id))
        self.assertEqual(data_events(pair.to_server()), b"still")
        self.assertFalse(pair.server.has_stream(stream_id))

    def test_fin_rides_on_data(self):
        server = YamuxConnection(False)
        events = server.receive_data(frame(FrameType.DATA, Flag.SYN | Flag.FIN, 1, 3, b"abc"))
        self.assertEqual(events, [StreamOpened(1), DataReceived(1, b"abc"), StreamEnded(1)])

    def test_fin_on_split_data_comes_after_payload(self):
        server = YamuxConnection(False)
        wire = frame(FrameType.DATA, Flag.SYN | Flag.FIN, 1, 4, b"abcd")
        events = server.receive_data(wire[:14]) + server.receive_data(wire[14:])
        self.assertEqual(events, [StreamOpened(1), DataReceived(1, b"ab"), DataReceived(1, b"cd"), StreamEnded(1)])

    def test_data_after_peer_fin_is_dropped(self):
        pair = Pair()
        stream_id = pair.open_accepted()
        events = pair.server.receive_data(
            frame(FrameType.WINDOW_UPDATE, Flag.FIN, stream_id, 0) + frame(FrameType.DATA, 0, stream_id, 2, b"zz")
        )
        self.assertEqual(events, [StreamEnded(stream_id)])

    def test_peer_reset(self):
        pair = Pair()
        stream_id = pair.open_accepted()
        pair.server.reset_stream(stream_id)
        self.assertFalse(pair.server.has_stream(stream_id))
        self.assertEqual(pair.to_client(), [StreamReset(stream_id)])
        self.assertFalse(pair.client.has_stream(stream_id))
        self.assertRaises(StreamClosedError, pair.client.send_data, stream_id, b"x")
        # Later frames for the id are ignored, data is drained, the session goes on.
        events = pair.client.receive_data(frame(FrameType.DATA, 0, stream_id, 3, b"abc") + frame(FrameType.PING, Flag.SYN, 0, 5))
        self.assertEqual(events, [PingReceived(5)])

    def test_unknown_stream_data_drained(self):
        conn = YamuxConnection(True)
        wire = frame(FrameType.DATA, 0, 99, 5, b"12345") + frame(FrameType.WINDOW_UPDATE, 0, 77, 10)
        wire += frame(FrameType.PING, Flag.ACK, 0, 3)
        self.assertEqual(conn.receive_data(wire), [PongReceived(3)])
        self.assertEqual(conn.data_to_send(), b"")

    def test_refused_open(self):
        pair = Pair()
        stream_id = pair.client.open_stream()
        pair.to_server()
        pair.server.reset_stream(stream_id)
        self.assertEqual(pair.to_client(), [StreamReset(stream_id)])

    def test_local_misuse(self):
        pair = Pair()
        self.assertRaises(StreamClosedError, pair.client.send_data, 1, b"x")
        self.assertRaises(StreamClosedError, pair.server.accept_stream, 1)
        stream_id = pair.open_accepted()
        self.assertRaises(StreamClosedError, pair.server.accept_stream, stream_id)
        self.assertRaises(ValueError, pair.server.consumed, stream_id, 1)
        pair.client.close_stream(stream_id)
        pair.client.close_stream(stream_id)  # second close: nothing more to send
        self.assertEqual(pair.client.data_to_send(), h("00 01 0004 00000001 00000000"))
        self.assertRaises(StreamClosedError, pair.client.send_data, stream_id, b"x")
        self.assertEqual(pair.client.send_window(stream_id), 0)
        pair.client.reset_stream(12345)
        pair.client.consumed(12345, 1)
        self.assertEqual(pair.client.data_to_send(), b"")

    def test_invalid_settings(self):
        self.assertRaises(ValueError, YamuxConnection, True, max_stream_window=INITIAL_STREAM_WINDOW - 1)
        self.assertRaises(ValueError, YamuxConnection, True, accept_backlog=0)

    def test_many_streams_interleaved(self):
        pair = Pair()
        rng = random.Random(7)
        ids = [pair.client.open_stream() for _ in range(40)]
        expected = {stream_id: bytearray() for stream_id in ids}
        received = {stream_id: bytearray() for stream_id in ids}
        for _ in range(400):
            stream_id = rng.choice(ids)
            chunk = bytes([stream_id % 256]) * rng.randint(1, 3000)
            self.assertEqual(pair.client.send_data(stream_id, chunk), len(chunk))
            expected[stream_id] += chunk
        wire = pair.client.data_to_send()
        position = 0
        while position < len(wire):
            step = rng.randint(1, 5000)
            for event in pair.server.receive_data(wire[position : position + step]):
                if isinstance(event, StreamOpened):
                    pair.server.accept_stream(event.stream_id)
                elif isinstance(event, DataReceived):
                    received[event.stream_id] += event.data
                    pair.server.consumed(event.stream_id, len(event.data))
            position += step
        self.assertEqual(received, expected)
        self.assertEqual(self.successful_acks(pair), set(ids))

    def successful_acks(self, pair):
        return {e.stream_id for e in pair.to_client() if isinstance(e, StreamAcknowledged)}


class FlowControlTests(SynchronousTestCase):
    def test_sender_stops_after_one_window(self):
        pair = Pair()
        stream_id = pair.client.open_stream()
        pair.to_server()
        # Before the ACK only the initial 256 KiB window is known.
        self.assertEqual(pair.client.send_data(stream_id, bytes(MIB)), INITIAL_STREAM_WINDOW)
        pair.server.accept_stream(stream_id)
        pair.to_client()
        payload = bytes(7 * MIB)
        self.assertEqual(pair.client.send_data(stream_id, payload), 6 * MIB - INITIAL_STREAM_WINDOW)
        self.assertEqual(pair.client.send_data(stream_id, payload), 0)
        events = pair.to_server()
        self.assertEqual(len(data_events(events)), 6 * MIB)
        # Consuming less than half a window earns nothing...
        pair.server.consumed(stream_id, 3 * MIB - 1)
        self.assertEqual(pair.server.data_to_send(), b"")
        self.assertEqual(pair.client.send_data(stream_id, payload), 0)
        # ...half a window earns exactly what was consumed.
        pair.server.consumed(stream_id, 1)
        self.assertEqual(pair.to_client(), [WindowUpdated(stream_id, 3 * MIB)])
        self.assertEqual(pair.client.send_data(stream_id, payload), 3 * MIB)
        self.assertEqual(pair.client.send_data(stream_id, payload), 0)

    def test_window_overrun_is_a_protocol_error(self):
        server = YamuxConnection(False)
        server.receive_data(frame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0))
        events = server.receive_data(encode_header(FrameType.DATA, 0, 1, INITIAL_STREAM_WINDOW + 1))
        self.assertEqual(len(events), 1)
        self.assertIsInstance(events[0], ConnectionTerminated)
        self.assertIn("receive window", str(events[0].error))
        self.assertEqual(server.data_to_send(), h("00 03 0000 00000000 00000001"))
        self.assertEqual(server.receive_data(b"anything"), [])

    def test_peer_with_256k_window(self):
        """frp < 0.50 uses a 256 KiB maximum: SYN/ACK deltas are 0, updates at 128 KiB."""
        pair = Pair(server_window=INITIAL_STREAM_WINDOW)
        stream_id = pair.client.open_stream()
        pair.to_server()
        pair.server.accept_stream(stream_id)
        self.assertEqual(pair.server.data_to_send(), h("00 01 0002 00000001 00000000"))
        pair.client.receive_data(h("00 01 0002 00000001 00000000"))
        total = 2 * MIB
        sent = received = 0
        for _ in range(100):
            sent += pair.client.send_data(stream_id, bytes(total - sent))
            for event in pair.to_server():
                if isinstance(event, DataReceived):
                    received += len(event.data)
                    pair.server.consumed(stream_id, len(event.data))
            for event in pair.to_client():
                self.assertEqual(event, WindowUpdated(stream_id, INITIAL_STREAM_WINDOW))
            if received == total:
                break
        self.assertEqual(received, total)
        # The other direction uses our 6 MiB window as usual.
        self.assertEqual(pair.server.send_window(stream_id), 6 * MIB)

    def test_large_frame_arrives_in_pieces(self):
        pair = Pair()
        stream_id = pair.open_accepted()
        pair.client.send_data(stream_id, bytes(range(256)) * (6 * 4096))
        wire = pair.client.data_to_send()
        pieces = []
        for position in range(0, len(wire), 65536):
            events = pair.server.receive_data(wire[position : position + 65536])
            pieces.extend(e.data for e in events)
            self.assertLess(len(pair.server._header_buf), HEADER_SIZE)
        self.assertEqual(b"".join(pieces), bytes(range(256)) * (6 * 4096))
        self.assertEqual(len(pieces), len(range(0, len(wire), 65536)))


class SessionTests(SynchronousTestCase):
    def test_backlog_overflow(self):
        pair = Pair(backlog=3)
        pair.client = YamuxConnection(True)  # the opener's own limit is the default 256
        ids = [pair.client.open_stream() for _ in range(4)]
        events = pair.to_server()
        self.assertEqual([e for e in events if isinstance(e, StreamOpened)], [StreamOpened(i) for i in ids[:3]])
        self.assertEqual(pair.to_client(), [StreamReset(ids[3])])
        # Accepting one makes room for the next.
        pair.server.accept_stream(ids[0])
        pair.client.open_stream()
        self.assertEqual(without_data(pair.to_server()), [StreamOpened(9), WindowUpdated(9, FRP_DELTA)])

    def test_frp_backlog_is_256(self):
        pair = Pair()
        client = YamuxConnection(True, accept_backlog=300)
        for _ in range(257):
            client.open_stream()
        events = pair.server.receive_data(client.data_to_send())
        self.assertEqual(sum(isinstance(e, StreamOpened) for e in events), 256)
        self.assertEqual(pair.server.data_to_send(), h("00 01 0008 00000201 00000000"))

    def test_open_limit(self):
        pair = Pair(backlog=2)
        first = pair.client.open_stream()
        pair.client.open_stream()
        self.assertRaises(OpenLimitReached, pair.client.open_stream)
        pair.to_server()
        pair.server.accept_stream(first)
        self.assertIn(StreamAcknowledged(first), pair.to_client())
        self.assertEqual(pair.client.open_stream(), 5)

    def test_duplicate_syn(self):
        server = YamuxConnection(False)
        syn = frame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0)
        events = server.receive_data(syn + syn + frame(FrameType.PING, Flag.SYN, 0, 1))
        self.assertEqual(events[0], StreamOpened(1))
        self.assertIsInstance(events[1], ConnectionTerminated)
        self.assertEqual(len(events), 2)
        self.assertEqual(server.data_to_send(), h("00 03 0000 00000000 00000001"))
        self.assertRaises(SessionClosedError, server.open_stream)
        self.assertRaises(SessionClosedError, server.ping)

    def test_second_fin(self):
        server = YamuxConnection(False)
        fin = frame(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0)
        events = server.receive_data(frame(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0) + fin + fin)
        self.assertEqual(events[:2], [StreamOpened(1), StreamEnded(1)])
        self.assertIsInstance(events[2], ConnectionTerminated)

    def test_bad_version_and_type(self):
        for bad in (h("01 00 0000 00000001 00000000"), h("00 04 0000 00000000 00000000")):
            conn = YamuxConnection(True)
            events = conn.receive_data(bad)
            self.assertEqual(len(events), 1)
            self.assertIsInstance(events[0].error, ProtocolError)
            self.assertEqual(conn.data_to_send(), b"")  # yamux sends no Go Away for these
            self.assertIsNotNone(conn.terminated)

    def test_go_away_normal(self):
        pair = Pair()
        stream_id = pair.open_accepted()
        pair.server.go_away()
        self.assertEqual(pair.to_client(), [GoAwayReceived(0)])
        self.assertRaises(SessionClosedError, pair.client.open_stream)
        # Existing streams carry on.
        pair.client.send_data(stream_id, b"x")
        self.assertEqual(pair.to_server(), [DataReceived(stream_id, b"x")])

    def test_go_away_error(self):
        conn = YamuxConnection(True)
        events = conn.receive_data(h("00 03 0000 00000000 00000002"))
        self.assertEqual(events[0], GoAwayReceived(2))
        self.assertIn("internal error", str(events[1].error))
        self.assertEqual(conn.data_to_send(), b"")

    def test_local_go_away_refuses_streams(self):
        server = YamuxConnection(False)
        server.go_away()
        server.data_to_send()
        events = server.receive_data(frame(FrameType.DATA, Flag.SYN, 1, 2, b"hi"))
        self.assertEqual(events, [])
        self.assertEqual(server.data_to_send(), h("00 01 0008 00000001 00000000"))


# -- hypothesis ---------------------------------------------------------------------------------
frames = st.lists(
    st.one_of(
        st.tuples(st.just(FrameType.DATA), st.integers(0, 15), st.integers(0, 2**32 - 1), st.binary(max_size=64)),
        st.tuples(
            st.sampled_from([FrameType.WINDOW_UPDATE, FrameType.PING, FrameType.GO_AWAY]),
            st.integers(0, 0xFFFF),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
        ),
    ),
    max_size=20,
)


def encode_frames(spec):
    out = []
    for type, flags, stream_id, body in spec:
        if type == FrameType.DATA:
            out.append(encode_header(type, flags, stream_id, len(body)) + body)
        else:
            out.append(encode_header(type, flags, stream_id, body))
    return b"".join(out)


def feed(conn, data, cuts):
    """Feed ``data`` split at ``cuts``; check the invariants after every piece."""
    events = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events.extend(conn.receive_data(data[start:cut]))
        start = max(start, cut)
        assert len(conn._header_buf) < HEADER_SIZE
    return events


def merge_data(events):
    """Events with adjacent DataReceived for the same stream merged (splitting only cuts payloads)."""
    merged = []
    for event in events:
        if isinstance(event, DataReceived) and merged and isinstance(merged[-1], DataReceived):
            if merged[-1].stream_id == event.stream_id:
                merged[-1] = DataReceived(event.stream_id, merged[-1].data + event.data)
                continue
        merged.append(event)
    return merged


class HypothesisTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(frames)
    def test_frames_round_trip(self, spec):
        """Every encoded frame decodes to its fields, back to back."""
        wire = encode_frames(spec)
        position = 0
        for type, flags, stream_id, body in spec:
            header = decode_header(wire, position)
            length = len(body) if type == FrameType.DATA else body
            self.assertEqual(header, FrameHeader(0, type, flags, stream_id, length))
            position += HEADER_SIZE + (len(body) if type == FrameType.DATA else 0)
        self.assertEqual(position, len(wire))

    @settings(max_examples=300, deadline=None)
    @given(frames, st.lists(st.integers(0, 2000), max_size=10), st.booleans())
    def test_splitting_never_changes_meaning(self, spec, cuts, is_client):
        wire = encode_frames(spec)
        whole = YamuxConnection(is_client).receive_data(wire)
        split_conn = YamuxConnection(is_client)
        split = feed(split_conn, wire, cuts)
        self.assertEqual(
            [(type(e), str(e)) for e in merge_data(split)], [(type(e), str(e)) for e in merge_data(whole)]
        )

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
    def test_garbage_never_raises(self, garbage, cuts):
        conn = YamuxConnection(False)
        events = feed(conn, garbage, cuts)
        terminated = [i for i, e in enumerate(events) if isinstance(e, ConnectionTerminated)]
        self.assertLessEqual(len(terminated), 1)
        if terminated:
            self.assertEqual(terminated[0], len(events) - 1)
            self.assertIsInstance(events[-1].error, ProtocolError)
            self.assertEqual(conn.receive_data(garbage + b"\x00" * 12), [])

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 5), st.binary(min_size=1, max_size=3000)), max_size=30),
           st.lists(st.integers(0, 100000), max_size=12))
    def test_random_traffic_delivered_in_order(self, writes, cuts):
        pair = Pair()
        ids = [pair.client.open_stream() for _ in range(6)]
        expected = {i: b"" for i in ids}
        for index, payload in writes:
            stream_id = ids[index]
            self.assertEqual(pair.client.send_data(stream_id, payload), len(payload))
            expected[stream_id] += payload
        events = feed(pair.server, pair.client.data_to_send(), cuts)
        self.assertEqual({i: data_events(events, i) for i in ids}, expected)
