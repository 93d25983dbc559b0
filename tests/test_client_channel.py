"""The control connection's byte level: clear Login/LoginResp, then AES-CFB (wire-protocol.md §6.1)."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._channel import ControlChannel
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import Login, LoginResp, NewProxyResp, Ping, ReqWorkConn, encode_message

LOGIN_RESP = bytes.fromhex("310000000000000030") + b'{"version":"0.65.0","run_id":"43dae6677cd93de8"}'
# §6.1 test vector: ReqWorkConn encrypted with token "abc" and an all-zero IV.
ENCRYPTED_REQ_WORK_CONN = bytes(16) + bytes.fromhex("18eafb2691ec4147a2ee9d")


class ControlChannelTests(SynchronousTestCase):
    def test_login_is_clear(self) -> None:
        channel = ControlChannel("abc")
        msg = Login(version="0.65.0", pool_count=1)
        self.assertEqual(channel.encode([msg]), encode_message(msg))

    def test_login_resp_then_encrypted_stream_in_one_chunk(self) -> None:
        # frps's IV and first encrypted message often share a segment with LoginResp.
        channel = ControlChannel("abc")
        channel.receive_data(LOGIN_RESP + ENCRYPTED_REQ_WORK_CONN[:20])
        self.assertEqual(channel.next_message(), LoginResp(version="0.65.0", run_id="43dae6677cd93de8"))
        self.assertTrue(channel.encrypted)
        self.assertIsNone(channel.next_message())
        channel.receive_data(ENCRYPTED_REQ_WORK_CONN[20:])
        self.assertEqual(channel.next_message(), ReqWorkConn())
        self.assertIsNone(channel.next_message())

    def test_send_after_login_is_encrypted_with_our_iv(self) -> None:
        channel = ControlChannel("abc")
        self.assertRaises(RuntimeError, channel.encode, [Ping()])
        channel.receive_data(LOGIN_RESP)
        channel.next_message()
        wire = channel.encode([Ping()]) + channel.encode([NewProxyResp(proxy_name="x")])
        peer = AESCFBCodec(derive_key("abc"))
        self.assertEqual(peer.decode(wire), encode_message(Ping()) + encode_message(NewProxyResp(proxy_name="x")))

    def test_a_batch_is_the_same_stream_as_single_messages(self) -> None:
        """One encode call for many messages (one write) gives the bytes of one call each."""
        batch, single = ControlChannel("abc"), ControlChannel("abc")
        for channel in (batch, single):
            channel.receive_data(LOGIN_RESP)
            channel.next_message()
        messages = [Ping(), NewProxyResp(proxy_name="x"), Ping()]
        wire = batch.encode(messages)
        self.assertEqual(
            AESCFBCodec(derive_key("abc")).decode(wire), b"".join(encode_message(m) for m in messages)
        )
        self.assertEqual(len(wire), len(b"".join(single.encode([m]) for m in messages)))

    def test_failed_login_stays_clear(self) -> None:
        channel = ControlChannel("abc")
        body = b'{"version":"0.65.0","error":"token in login doesn\'t match token from configuration"}'
        channel.receive_data(b"1" + len(body).to_bytes(8, "big") + body)
        resp = channel.next_message()
        self.assertEqual(resp.error, "token in login doesn't match token from configuration")
        self.assertFalse(channel.encrypted)

    def test_first_message_must_be_login_resp(self) -> None:
        channel = ControlChannel("abc")
        channel.receive_data(encode_message(ReqWorkConn()))
        self.assertRaises(ProtocolError, channel.next_message)

    def test_garbage_is_a_protocol_error(self) -> None:
        channel = ControlChannel("abc")
        channel.receive_data(b"z" + bytes(8))
        self.assertRaises(ProtocolError, channel.next_message)

    @given(st.lists(st.integers(0, 200), max_size=8))
    def test_any_chunking_gives_the_same_messages(self, cuts) -> None:
        frps = AESCFBCodec(derive_key("abc"))
        later = [NewProxyResp(proxy_name="web", remote_addr=":6000"), ReqWorkConn(), NewProxyResp(error="x" * 300)]
        stream = LOGIN_RESP + b"".join(frps.encode(encode_message(m)) for m in later)
        channel = ControlChannel("abc")
        received = []
        start = 0
        for cut in sorted(set(cuts)) + [len(stream)]:
            channel.receive_data(stream[start:cut])
            start = max(start, cut)
            while (msg := channel.next_message()) is not None:
                received.append(msg)
        self.assertEqual(received, [LoginResp(version="0.65.0", run_id="43dae6677cd93de8")] + later)
