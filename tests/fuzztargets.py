"""Every parser of frptw as a fuzz target: one function ``bytes -> None`` per parser, with the
errors it may raise and a few well-formed seed inputs.

A parser that meets bad input must fail with its clean, typed error (issue 14): the peer's
connection is then closed with one log line.  Any other exception (IndexError, struct.error,
UnicodeDecodeError, RecursionError...) would escape the protocol as a traceback, so the fuzzers
(tests/test_fuzz_smoke.py in CI, bench/fuzz.py on demand) call :func:`check`, which lets only
the target's ``allowed`` errors through.

Stream parsers are fed each input in two pieces (split in the middle) so that the incremental
paths (partial headers, partial frames) are exercised as well as the whole-buffer ones.  The
seeds are real encodings made by our own encoders (or by OpenSSL, for the ClientHello, and the
configuration corpus, for the config formats), so that mutation reaches past the first check.

Not targets: the websocket framing (autobahn's, not ours), the vhost HTTPS SNI preamble (its
parser is :mod:`frptw.wire.clienthello`, a target), OIDC responses (JSON through the stdlib).
"""

import functools
import os
import struct
from typing import Callable, Dict, List, NamedTuple, Tuple, Type

from twisted.internet.task import Clock

from frptw.config import parse_client_config, parse_server_config
from frptw.errors import ConfigError, ProtocolError
from frptw.server.vhost.http import HTTPVhost
from frptw.server.vhost.tcpmux import TCPMuxVhost
from frptw.wire import messages as m
from frptw.wire import nathole, socks5, stun, tunnels
from frptw.wire.clienthello import ClientHelloReader
from frptw.wire.crypto import AESCFBCodec
from frptw.wire.kcp import KcpConnection
from frptw.wire.kcpfec import FecDecoder, FecEncoder
from frptw.wire.lz4 import LZ4FrameCodec
from frptw.wire.snappy import SnappyFramingCodec
from frptw.wire.yamux import StreamClosedError, StreamOpened, YamuxConnection
from tests.corpus import CONFIGS
from tests.fakes import client_hello, connectVhost


class Target(NamedTuple):
    name: str
    run: Callable[[bytes], None]
    allowed: Tuple[Type[BaseException], ...]
    seeds: Callable[[], List[bytes]]


class FuzzFailure(AssertionError):
    """A target raised an error it must not raise; the message carries a reproducer."""


def check(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``; raise :class:`FuzzFailure` (with the input) on an error
    other than the target's allowed ones."""
    try:
        target.run(data)
    except target.allowed:
        pass
    except Exception as e:
        raise FuzzFailure(f"{target.name}: {type(e).__name__}: {e}\n"
                          f"reproduce: tests.fuzztargets.TARGETS[{target.name!r}].run({data!r})") from e


def halves(data: bytes) -> Tuple[bytes, bytes]:
    middle = len(data) // 2
    return data[:middle], data[middle:]


# -- frp messages, yamux, compression -------------------------------------------------------------
def _messages(data: bytes) -> None:
    reader = m.MessageReader()
    for piece in halves(data):
        reader.feed(piece)
        while reader.next_message() is not None:
            pass


def _message_seeds() -> List[bytes]:
    return [
        m.encode_message(m.Login(version="0.65.0", hostname="h", os="linux", arch="amd64", user="u")),
        m.encode_message(m.NewProxy(proxy_name="ssh", proxy_type="tcp", remote_port=6000)),
        m.encode_message(m.NatHoleSid(transaction_id="t", sid="s", response=True, nonce="n")),
        m.encode_message(m.Ping()) + m.encode_message(m.Pong()),
    ]


def _yamux(data: bytes) -> None:
    """frps's session, accepting every stream as the Twisted adapter does (a stream reset
    further down the same batch of events is skipped, as there)."""
    session = YamuxConnection(is_client=False)
    for piece in halves(data):
        for event in session.receive_data(piece):
            if isinstance(event, StreamOpened):
                try:
                    session.accept_stream(event.stream_id)
                except StreamClosedError:
                    pass
    session.data_to_send()


def _yamux_seeds() -> List[bytes]:
    client = YamuxConnection(is_client=True)
    stream = client.open_stream()
    client.send_data(stream, b"hello world")
    client.ping()
    client.close_stream(stream)
    client.go_away()
    return [client.data_to_send()]


def _codec(make: Callable[[], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        codec = make()
        for piece in halves(data):
            codec.decode(piece)  # type: ignore[attr-defined]
    return run


def _codec_seeds(make: Callable[[], object]) -> Callable[[], List[bytes]]:
    def seeds() -> List[bytes]:
        return [make().encode(b"frptw " * 50 + bytes(range(256)))]  # type: ignore[attr-defined]
    return seeds


# -- TLS, SOCKS5, HTTP CONNECT, STUN, nathole -----------------------------------------------------
def _clienthello(data: bytes) -> None:
    reader = ClientHelloReader()
    for piece in halves(data):
        reader.feed(piece)
        reader.next_event()


def _socks5_server(data: bytes) -> None:
    server = socks5.Socks5Server(credentials=(b"user", b"pass") if data[:1] == b"\x00" else None)
    for piece in halves(data[1:]):
        if server.stage in (socks5.Stage.CONNECT, socks5.Stage.CLOSED):
            return
        server.receive_data(piece)


def _socks5_client(data: bytes) -> None:
    client = tunnels.Socks5Client("example.com", 443, *(("u", "p") if data[:1] == b"\x00" else ()))
    client.start()
    for piece in halves(data[1:]):
        if client.established:
            return
        client.receive_data(piece)


def _http_connect_client(data: bytes) -> None:
    client = tunnels.HTTPConnectClient("example.com", 443)
    client.start()
    for piece in halves(data):
        if client.established:
            return
        client.receive_data(piece)


def _stun(data: bytes) -> None:
    stun.decode(data)


def _stun_seeds() -> List[bytes]:
    request = stun.binding_request(b"\x01" * 12)
    return [stun.encode(request),
            stun.encode(stun.binding_response(request, ("192.0.2.1", 4000), ("2001:db8::1", 3478)))]


_PROBE_KEY = b"k" * 16


def _nathole(data: bytes) -> None:
    """The fuzzed bytes are the probe's plaintext, so mutation reaches the message decoder
    behind the cipher (random ciphertext would only ever decrypt to noise)."""
    nathole.decode_probe(_PROBE_KEY, AESCFBCodec(_PROBE_KEY).encode(data))


# -- KCP and its FEC ------------------------------------------------------------------------------
def _kcp(data: bytes) -> None:
    """The conversation id is taken from the input, so segments reach past the conv check."""
    conn = KcpConnection(conv=int.from_bytes(data[:4].ljust(4, b"\0"), "little"))
    try:
        conn.input(data, now=1000)
    finally:
        conn.flush(now=1020)
        conn.recv()


def _kcp_seeds() -> List[bytes]:
    sender = KcpConnection(conv=0x01020304)
    sender.send(b"x" * 3000)
    return sender.flush(now=0)


def _datagrams(data: bytes) -> List[bytes]:
    """Split a fuzz input into datagrams, each prefixed by its 2-byte big-endian length."""
    out, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">H", data.ljust(offset + 2, b"\0"), offset)
        out.append(data[offset + 2:offset + 2 + size])
        offset += 2 + size
    return out


def _fec(data: bytes) -> None:
    """FEC datagrams in, KCP packets out into one conversation: frps's KCP receive path."""
    decoder = FecDecoder()
    conn = KcpConnection(conv=0x01020304)
    for datagram in _datagrams(data):
        for packet in decoder.decode(datagram):
            conn.input(packet, now=1000)
    conn.recv()


def _fec_seeds() -> List[bytes]:
    encoder = FecEncoder()
    framed = b""
    for packet in _kcp_seeds()[:10] * 2:
        for datagram in encoder.encode(packet, now=0, rto=200):
            framed += struct.pack(">H", len(datagram)) + datagram
    return [framed]


# -- HTTP heads through the vhosts ----------------------------------------------------------------
def _vhost(make: Callable[[Clock], object]) -> Callable[[bytes], None]:
    """A user connection of a vhost with no routes, on a StringTransport: whatever the head,
    the vhost answers (404, 400...) and closes; nothing may escape ``dataReceived``."""
    def run(data: bytes) -> None:
        clock = Clock()
        conn, _ = connectVhost(make(clock), b"")
        for piece in halves(data):
            conn.dataReceived(piece)
        clock.advance(3600)
    return run


def _http_seeds() -> List[bytes]:
    return [b"GET /index.html?x=1 HTTP/1.1\r\nHost: a.example.com\r\nAuthorization: Basic dTpw\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: c\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"]


# -- configuration --------------------------------------------------------------------------------
def _config(parse: Callable[..., object], fmt: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        parse(data.decode("utf-8", errors="replace"), fmt=fmt, env={})
    return run


def _config_seeds(role: str, extension: str) -> Callable[[], List[bytes]]:
    """The ``ok-*`` files of the configuration corpus in that format."""
    def seeds() -> List[bytes]:
        directory = os.path.join(CONFIGS, role)
        out = []
        for name in sorted(os.listdir(directory)):
            if name.startswith("ok-") and name.endswith("." + extension):
                with open(os.path.join(directory, name), "rb") as f:
                    out.append(f.read())
        return out or [b""]
    return seeds


def _fixed(*seeds: bytes) -> Callable[[], List[bytes]]:
    return lambda: list(seeds)


def _targets() -> Dict[str, Target]:
    targets = [
        Target("messages", _messages, (ProtocolError,), _message_seeds),
        Target("yamux", _yamux, (ProtocolError,), _yamux_seeds),
        Target("snappy", _codec(SnappyFramingCodec), (ProtocolError,), _codec_seeds(SnappyFramingCodec)),
        Target("lz4", _codec(LZ4FrameCodec), (ProtocolError,), _codec_seeds(LZ4FrameCodec)),
        Target("clienthello", _clienthello, (ProtocolError,), lambda: [client_hello("a.example.com")]),
        Target("socks5_server", _socks5_server, (ProtocolError,),
               _fixed(b"\x01\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb",
                      b"\x00\x05\x01\x02\x01\x04user\x04pass\x05\x01\x00\x04" + b"\0" * 15 + b"\x01\x00\x50")),
        Target("socks5_client", _socks5_client, (tunnels.TunnelError,),
               _fixed(b"\x01\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x01\xbb",
                      b"\x00\x05\x02\x01\x00\x05\x00\x00\x03\x04host\x00\x50")),
        Target("http_connect_client", _http_connect_client, (tunnels.TunnelError,),
               _fixed(b"HTTP/1.1 200 Connection established\r\n\r\n", b"HTTP/1.0 407 No\r\nContent-Length: 2\r\n\r\nno")),
        Target("stun", _stun, (ProtocolError,), _stun_seeds),
        Target("nathole", _nathole, (ProtocolError,),
               lambda: [m.encode_message(m.NatHoleSid(transaction_id="t" * 20, sid="s", response=False, nonce="n"))]),
        Target("kcp", _kcp, (ProtocolError,), _kcp_seeds),
        Target("kcp_fec", _fec, (ProtocolError,), _fec_seeds),
        Target("vhost_http", _vhost(lambda clock: HTTPVhost(clock, 8080, "example.com")), (), _http_seeds),
        Target("vhost_tcpmux", _vhost(lambda clock: TCPMuxVhost(clock, 8337, passthrough=False)), (),
               _fixed(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\nProxy-Authorization: Basic dTpw\r\n\r\nhi")),
    ]
    for role, parse in (("frpc", parse_client_config), ("frps", parse_server_config)):
        for fmt, extension in (("ini", "ini"), ("toml", "toml"), ("yaml", "yaml"), ("json", "json")):
            targets.append(Target(f"config_{role}_{fmt}", _config(parse, fmt), (ConfigError,),
                                  _config_seeds(role, extension)))
    return {target.name: target for target in targets}


#: Every target by name.
TARGETS: Dict[str, Target] = _targets()


@functools.lru_cache(maxsize=None)
def seeds(name: str) -> Tuple[bytes, ...]:
    """The target's seed inputs (computed once)."""
    return tuple(TARGETS[name].seeds())


#: Inputs that random edits are unlikely to build, run through every target by the smoke test:
#: nesting deeper than the recursion limit and integers longer than Python converts (the two
#: kinds of config bug bench/fuzz.py's first runs led to).
HOSTILE: Tuple[bytes, ...] = (
    b"[" * 100_000, b'{"a":' * 50_000, b"a = " + b"[" * 100_000, b"- " * 50_000 + b"x",
    b'{"serverPort": ' + b"9" * 5000 + b"}", b"serverPort = " + b"9" * 5000, b"serverPort = 0x" + b"9" * 5000,
    b"serverPort: 0x" + b"9" * 5000, b"[common]\nserver_port = " + b"9" * 5000,
)


def splice(seed: bytes, start: int, end: int, junk: bytes) -> bytes:
    """``seed`` with ``seed[start:end]`` (positions taken modulo its length) replaced by
    ``junk``: one edit that keeps the rest of a well-formed input, so the parser gets past its
    first checks.  Shared by the hypothesis strategy and bench/fuzz.py's mutation loop."""
    size = len(seed) + 1
    start, end = sorted((start % size, end % size))
    return seed[:start] + junk + seed[end:]


def inputs(name: str):
    """A hypothesis strategy for one target: raw bytes, or a seed with a few spliced edits."""
    from hypothesis import strategies as st  # only the test and bench runs need hypothesis

    edit = st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16), st.binary(max_size=8))

    def edited(seed: bytes, edits) -> bytes:
        for start, end, junk in edits:
            seed = splice(seed, start, end, junk)
        return seed

    return st.one_of(st.binary(max_size=512),
                     st.builds(edited, st.sampled_from(seeds(name)), st.lists(edit, min_size=1, max_size=4)))


__all__ = ["FuzzFailure", "HOSTILE", "TARGETS", "Target", "check", "halves", "inputs", "seeds", "splice"]
