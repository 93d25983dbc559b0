"""Token keys (MD5) and the AES-128-CFB stream codec: Appendix B vectors B1-B6, IV handling,
hypothesis round trips with random chunking."""

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

import frptw
from frptw.wire import messages
from frptw.wire.auth import privilege_key, verify_privilege_key
from frptw.wire.codec import ChainCodec
from frptw.wire.crypto import IV_LENGTH, AESCFBCodec, derive_key
from frptw.wire.snappy import SnappyFramingCodec

ZERO_IV = bytes(16)
KEY_ABC = bytes.fromhex("62e5ed67fdd04e5f1f71d779ceb9667f")


def run_python(*args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter that imports this checkout's frptw (trial runs us in _trial_temp)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(frptw.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=60, env=env)


class PrivilegeKeyTests(SynchronousTestCase):
    def test_vectors(self):
        self.assertEqual(privilege_key("abc", 1700000000), "22bd6333f840eeeee03ad14f75fd96ac")  # B1
        self.assertEqual(privilege_key("abc", 1795640934), "5a0b5c58b8214ef5bd8b4ccb92a604d8")  # B2
        # From the real frpc 0.65 captures of §5.8 (token "abc") and §9.1 (sign_key with sk "sk").
        self.assertEqual(privilege_key("abc", 1795641340), "65e1eefc2880057a04b164ee64b6581b")
        self.assertEqual(privilege_key("sk", 1795641356), "0f7d8f092b573f8bd9cd53620a986962")

    def test_verify(self):
        self.assertTrue(verify_privilege_key("abc", 1795640934, "5a0b5c58b8214ef5bd8b4ccb92a604d8"))
        self.assertFalse(verify_privilege_key("abc", 1795640935, "5a0b5c58b8214ef5bd8b4ccb92a604d8"))
        self.assertFalse(verify_privilege_key("abd", 1795640934, "5a0b5c58b8214ef5bd8b4ccb92a604d8"))
        self.assertFalse(verify_privilege_key("abc", 1795640934, "5A0B5C58B8214EF5BD8B4CCB92A604D8"))
        self.assertFalse(verify_privilege_key("abc", 1795640934, ""))
        self.assertFalse(verify_privilege_key("abc", 1795640934, "\u00e9\ud800"))

    def test_non_ascii_token(self):
        """The token is hashed as UTF-8, like Go's []byte(string)."""
        self.assertEqual(privilege_key("\u00e9", 1), "cefc32b6fa695882037a9719399663fa")  # MD5(c3 a9 31)


class KeyDerivationTests(SynchronousTestCase):
    def test_vectors(self):
        self.assertEqual(derive_key("abc"), KEY_ABC)  # B3
        self.assertEqual(derive_key("").hex(), "cdc9dc4c472c37331281df4c232a8407")  # B4

    def test_cached(self):
        derive_key("cache-me")
        before = derive_key.cache_info().hits
        self.assertIs(derive_key("cache-me"), derive_key("cache-me"))
        self.assertEqual(derive_key.cache_info().hits, before + 2)


class AESCFBVectorTests(SynchronousTestCase):
    def test_hello(self):
        """B5: the IV goes out in clear right before the first ciphertext byte."""
        self.assertEqual(AESCFBCodec(KEY_ABC, ZERO_IV).encode(b"hello"), ZERO_IV + bytes.fromhex("028f974afe"))

    def test_req_work_conn(self):
        """B6: a whole encrypted control message."""
        wire = AESCFBCodec(KEY_ABC, ZERO_IV).encode(messages.encode_message(messages.ReqWorkConn()))
        self.assertEqual(wire, ZERO_IV + bytes.fromhex("18eafb2691ec4147a2ee9d"))
        reader = messages.MessageReader()
        reader.feed(AESCFBCodec(KEY_ABC).decode(wire))
        self.assertEqual(reader.next_message(), messages.ReqWorkConn())

    def test_stream_state_continues_across_writes(self):
        one = AESCFBCodec(KEY_ABC, ZERO_IV)
        pieces = one.encode(b"he") + one.encode(b"") + one.encode(b"llo")
        self.assertEqual(pieces, ZERO_IV + bytes.fromhex("028f974afe"))

    def test_decode_iv_split_across_calls(self):
        wire = ZERO_IV + bytes.fromhex("028f974afe")
        for cut in range(len(wire) + 1):
            codec = AESCFBCodec(KEY_ABC)
            self.assertEqual(codec.decode(wire[:cut]) + codec.decode(wire[cut:]), b"hello", cut)
        codec = AESCFBCodec(KEY_ABC)
        self.assertEqual(b"".join(codec.decode(wire[i:i + 1]) for i in range(len(wire))), b"hello")

    def test_empty_write_sends_nothing(self):
        """A side that never writes never sends its IV (§6.1)."""
        codec = AESCFBCodec(KEY_ABC, ZERO_IV)
        self.assertEqual(codec.encode(b""), b"")
        self.assertEqual(codec.encode(b"hello"), ZERO_IV + bytes.fromhex("028f974afe"))
        self.assertEqual(AESCFBCodec(KEY_ABC).decode(b""), b"")

    def test_random_iv(self):
        first, second = AESCFBCodec(KEY_ABC).encode(b"x"), AESCFBCodec(KEY_ABC).encode(b"x")
        self.assertEqual(len(first), IV_LENGTH + 1)
        self.assertNotEqual(first[:IV_LENGTH], second[:IV_LENGTH])

    def test_bad_iv_length(self):
        self.assertRaises(ValueError, AESCFBCodec, KEY_ABC, b"short")

    def test_directions_are_independent(self):
        """Each side decrypts with the *peer's* IV, encrypts with its own."""
        a, b = AESCFBCodec(KEY_ABC, b"A" * 16), AESCFBCodec(KEY_ABC, b"B" * 16)
        self.assertEqual(b.decode(a.encode(b"ping")), b"ping")
        self.assertEqual(a.decode(b.encode(b"pong")), b"pong")
        self.assertEqual(b.decode(a.encode(b"again")), b"again")

    def test_wrong_key_gives_garbage_not_errors(self):
        wire = AESCFBCodec(derive_key("right")).encode(b"secret message")
        self.assertNotEqual(AESCFBCodec(derive_key("wrong")).decode(wire), b"secret message")

    def test_import_emits_no_warnings(self):
        """CFB lives in cryptography's decrepit module since 47; importing must not warn."""
        code = "import sys, frptw.wire.crypto as c; c.AESCFBCodec(bytes(16)).encode(b'x')"
        result = run_python("-W", "error", "-c", code)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertEqual(result.stderr, b"")

    def test_wire_layer_does_not_import_twisted(self):
        code = ("import sys; import frptw.wire.messages, frptw.wire.auth, frptw.wire.crypto, frptw.wire.snappy, "
                "frptw.wire.lz4; sys.exit(any(m == 'twisted' or m.startswith('twisted.') for m in sys.modules))")
        result = run_python("-c", code)
        self.assertEqual(result.returncode, 0, result.stderr.decode())


def chunked(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


class AESCFBPropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=6), st.lists(st.integers(0, 5000), max_size=12),
           st.binary(min_size=16, max_size=16))
    def test_round_trip_random_chunking(self, writes, cuts, iv):
        sender, receiver = AESCFBCodec(KEY_ABC, iv), AESCFBCodec(KEY_ABC)
        wire = b"".join(sender.encode(w) for w in writes)
        plain = b"".join(writes)
        self.assertEqual(len(wire), len(plain) + (IV_LENGTH if plain else 0))
        self.assertEqual(b"".join(receiver.decode(piece) for piece in chunked(wire, cuts)), plain)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=70000), max_size=4), st.lists(st.integers(0, 1 << 18), max_size=12))
    def test_work_connection_chain(self, writes, cuts):
        """Compressed then encrypted, as frp's work connections with both options (§7.3)."""
        key = derive_key("abc")
        sender = ChainCodec([AESCFBCodec(key), SnappyFramingCodec()])
        receiver = ChainCodec([AESCFBCodec(key), SnappyFramingCodec()])
        wire = b"".join(sender.encode(w) for w in writes)
        self.assertEqual(b"".join(receiver.decode(piece) for piece in chunked(wire, cuts)), b"".join(writes))
