"""The sans-IO SOCKS5 server: go-socks5's answers byte for byte, any split of the input."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.socks5 import Close, Connect, Send, Socks5Server, Stage, reply

AUTH = (b"alice", b"s3cret")


def run(data: bytes, credentials=None, chunk: int = 0):
    """Feed ``data`` (in pieces of ``chunk`` bytes, 0: at once) until the machine stops;
    returns the machine, its events and what arrived after it stopped (the adapter holds it)."""
    machine = Socks5Server(credentials)
    events = []
    rest = b""
    pieces = [data] if not chunk else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        if machine.stage in (Stage.CONNECT, Stage.CLOSED):
            rest += piece
        else:
            events += machine.receive_data(piece)
    return machine, events, rest


def merged(events):
    """Events with consecutive Sends joined (how they reach the wire)."""
    out = []
    for event in events:
        if isinstance(event, Send) and out and isinstance(out[-1], Send):
            out[-1] = Send(out[-1].data + event.data)
        else:
            out.append(event)
    return out


class Socks5ServerTests(SynchronousTestCase):
    def test_no_auth_connect_ipv4(self) -> None:
        machine, events, _ = run(b"\x05\x01\x00" + b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90" + b"GET /")
        self.assertEqual(events, [Send(b"\x05\x00"), Connect("127.0.0.1", 8080, False)])
        self.assertEqual(machine.take_unconsumed(), b"GET /")

    def test_connect_ipv6_and_domain(self) -> None:
        _, events, _ = run(b"\x05\x01\x00\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x50")
        self.assertEqual(events[-1], Connect("::1", 80, False))
        _, events, _ = run(b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb")
        self.assertEqual(events[-1], Connect("example.com", 443, True))

    def test_user_pass(self) -> None:
        _, events, _ = run(b"\x05\x02\x00\x02" + b"\x01\x05alice\x06s3cret" + b"\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x16", AUTH)
        self.assertEqual(events, [Send(b"\x05\x02"), Send(b"\x01\x00"), Connect("10.0.0.1", 22, False)])

    def test_wrong_password_gets_01_01_and_close(self) -> None:
        machine, events, _ = run(b"\x05\x01\x02\x01\x05alice\x05wrong", AUTH)
        self.assertEqual(events, [Send(b"\x05\x02"), Send(b"\x01\x01"), Close("authentication failed for user 'alice'")])
        self.assertIs(machine.stage, Stage.CLOSED)

    def test_only_no_auth_offered_when_auth_required(self) -> None:
        _, events, _ = run(b"\x05\x01\x00", AUTH)
        self.assertEqual(events, [Send(b"\x05\xff"), Close("no acceptable authentication method")])

    def test_auth_offered_but_not_configured(self) -> None:
        _, events, _ = run(b"\x05\x01\x02")
        self.assertEqual(events, [Send(b"\x05\xff"), Close("no acceptable authentication method")])

    def test_bad_versions_close_without_reply(self) -> None:
        self.assertEqual(run(b"GET / HTTP/1.1\r\n")[1], [Close("unsupported SOCKS version 71")])
        self.assertEqual(run(b"\x04\x01\x00\x50")[1], [Close("unsupported SOCKS version 4")])
        self.assertEqual(run(b"\x05\x01\x02\x02\x05alice", AUTH)[1][-1], Close("unsupported authentication version 2"))
        self.assertEqual(run(b"\x05\x01\x00\x04\x01\x00\x01")[1][-1], Close("unsupported request version 4"))

    def test_unsupported_address_type_and_command(self) -> None:
        _, events, _ = run(b"\x05\x01\x00\x05\x01\x00\x02")
        self.assertEqual(events[1:], [Send(reply(8)), Close("address type 2 not supported")])
        _, events, _ = run(b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x1f\x90")  # BIND
        self.assertEqual(events[1:], [Send(reply(7)), Close("command 2 not supported")])
        _, events, _ = run(b"\x05\x01\x00\x05\x03\x00\x01\x7f\x00\x00\x01\x1f\x90")  # UDP ASSOCIATE
        self.assertEqual(events[1:], [Send(reply(7)), Close("command 3 not supported")])

    def test_unusable_domain(self) -> None:
        _, events, _ = run(b"\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50")
        self.assertEqual(events[1:], [Send(reply(4)), Close("cannot resolve b''")])

    def test_replies(self) -> None:
        self.assertEqual(reply(5), b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        self.assertEqual(reply(0, "127.0.0.1", 40000), b"\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40")
        self.assertEqual(reply(0, "::ffff:10.0.0.1", 1), b"\x05\x00\x00\x01\x0a\x00\x00\x01\x00\x01")
        self.assertEqual(reply(0, "::1", 2), b"\x05\x00\x00\x04" + bytes(15) + b"\x01\x00\x02")

    def test_no_input_after_the_end(self) -> None:
        machine, _, _ = run(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90")
        self.assertRaises(RuntimeError, machine.receive_data, b"x")

    @given(st.binary(max_size=600), st.integers(min_value=1, max_value=40), st.booleans())
    def test_any_split_gives_the_same_answers(self, data: bytes, chunk: int, auth: bool) -> None:
        credentials = AUTH if auth else None
        whole, atOnce, _ = run(data, credentials)
        split, inPieces, rest = run(data, credentials, chunk)
        self.assertEqual(merged(inPieces), merged(atOnce))
        self.assertEqual(split.stage, whole.stage)
        if whole.stage is Stage.CONNECT:
            self.assertEqual(split.take_unconsumed() + rest, whole.take_unconsumed())

    @given(st.binary(max_size=2000))
    def test_garbage_never_raises_and_holds_little(self, data: bytes) -> None:
        machine, events, _ = run(data, AUTH, chunk=7)
        if machine.stage not in (Stage.CONNECT, Stage.CLOSED):
            self.assertLessEqual(len(machine._buffer), 520)
        self.assertTrue(all(isinstance(e, (Send, Connect, Close)) for e in events))

    @given(st.text(alphabet=st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=255),
           st.integers(min_value=0, max_value=65535))
    def test_domain_round_trip(self, name: str, port: int) -> None:
        request = b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode() + port.to_bytes(2, "big")
        _, events, _ = run(b"\x05\x01\x00" + request)
        self.assertEqual(events[-1], Connect(name, port, True))
