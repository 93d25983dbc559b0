"""The sans-IO ClientHello reader, with ClientHellos made by OpenSSL (Python's ssl module)."""

import ssl
import struct
from typing import Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.clienthello import (
    ALERT_PROTOCOL_VERSION,
    ALERT_UNRECOGNIZED_NAME,
    NEED_MORE,
    ClientHello,
    ClientHelloReader,
)
from frptw.wire.errors import ProtocolError
from tests.fakes import client_hello


def handshake_of(flight: bytes) -> bytes:
    """The handshake bytes of a single-record flight."""
    assert flight[0] == 22 and struct.unpack("!H", flight[3:5])[0] == len(flight) - 5
    return flight[5:]


def records(handshake: bytes, size: int, version: bytes = b"\x03\x01") -> bytes:
    """``handshake`` re-fragmented into handshake records of ``size`` bytes."""
    out = b""
    for i in range(0, len(handshake), size):
        piece = handshake[i:i + size]
        out += b"\x16" + version + struct.pack("!H", len(piece)) + piece
    return out


def read(data: bytes, reader: Optional[ClientHelloReader] = None):
    reader = reader or ClientHelloReader()
    reader.feed(data)
    return reader.next_event()


def hello_body(extensions: bytes, legacy_version: int = 0x0303) -> bytes:
    """A minimal ClientHello handshake message with the given extensions block."""
    body = struct.pack("!H", legacy_version) + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(extensions)) + extensions
    return b"\x01" + len(body).to_bytes(3, "big") + body


def extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def sni(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(bytes([name_type]) + struct.pack("!H", len(n)) + n for n in names)
    return extension(0, struct.pack("!H", len(entries)) + entries)


class RealClientHelloTests(SynchronousTestCase):
    def test_tls13_with_sni(self):
        hello = read(client_hello("A.Example.test"))
        self.assertIsInstance(hello, ClientHello)
        self.assertEqual(hello.server_name, "A.Example.test")
        self.assertIn(0x0304, hello.supported_versions)
        self.assertEqual(hello.refusal(), ALERT_UNRECOGNIZED_NAME)
        self.assertEqual(ALERT_UNRECOGNIZED_NAME, b"\x15\x03\x03\x00\x02\x02\x70")

    def test_tls12_with_sni(self):
        hello = read(client_hello("b.test", ssl.TLSVersion.TLSv1_2))
        self.assertEqual((hello.server_name, hello.legacy_version, hello.supported_versions), ("b.test", 0x0303, ()))
        self.assertEqual(hello.refusal(), ALERT_UNRECOGNIZED_NAME)

    def test_without_sni(self):
        self.assertEqual(read(client_hello(None)).server_name, "")

    def test_one_byte_pieces(self):
        flight = client_hello("pieces.test")
        reader = ClientHelloReader()
        for i in range(len(flight)):
            self.assertIs(reader.next_event(), NEED_MORE)
            reader.feed(flight[i:i + 1])
        hello = reader.next_event()
        self.assertEqual(hello.server_name, "pieces.test")
        self.assertIs(reader.next_event(), hello)
        self.assertEqual(reader.buffered, flight)

    def test_fragmented_over_records(self):
        """A ClientHello split over many records (a record may end inside any field)."""
        handshake = handshake_of(client_hello("frag.test"))
        for size in (1, 7, 100):
            self.assertEqual(read(records(handshake, size)).server_name, "frag.test")

    def test_bytes_after_hello_are_kept(self):
        flight = client_hello("x.test") + b"\x17\x03\x03early"
        reader = ClientHelloReader()
        self.assertEqual(read(flight, reader).server_name, "x.test")
        self.assertEqual(reader.buffered, flight)

    def test_old_client_gets_protocol_version(self):
        hello = ClientHello("x.test", 0x0301)
        self.assertEqual(hello.refusal(), ALERT_PROTOCOL_VERSION)
        self.assertEqual(ClientHello("x.test", 0x0303, (0x0302, 0x0301)).refusal(), ALERT_PROTOCOL_VERSION)
        self.assertEqual(ClientHello("x.test", 0x0303, (0x0a0a, 0x0304)).refusal(), ALERT_UNRECOGNIZED_NAME)


class RefusedInputTests(SynchronousTestCase):
    def assertRefused(self, data: bytes, reader: Optional[ClientHelloReader] = None):
        self.assertRaises(ProtocolError, read, data, reader)

    def test_not_tls(self):
        self.assertRefused(b"GET / HTTP/1.1\r\n\r\n")
        self.assertRefused(b"\x16\x01")  # record version major must be 3

    def test_other_record_before_hello(self):
        self.assertRefused(b"\x15\x03\x03\x00\x02\x02\x70")

    def test_bad_record_lengths(self):
        self.assertRefused(b"\x16\x03\x01\x00\x00")
        self.assertRefused(b"\x16\x03\x01\x40\x01")

    def test_other_handshake_message(self):
        self.assertRefused(records(b"\x02\x00\x00\x00", 4))

    def test_oversized_handshake(self):
        self.assertRefused(records(b"\x01\x01\x00\x01", 4))

    def test_go_parser_rules(self):
        for bad in (
            sni(b"a.test."),  # trailing dot
            sni(b"a.test", b"b.test"),  # two host names
            sni(b""),  # empty name
            extension(0, b"\x00\x00"),  # empty list
            sni(b"a.test") + sni(b"b.test"),  # repeated extension
            extension(0, b"\x00\x09\x00\x00\x06a.test\x00"),  # bytes after the list
            extension(43, b"\x00"),  # empty supported_versions
        ):
            self.assertRefused(records(hello_body(bad), 200))

    def test_name_of_another_type_is_skipped(self):
        hello = read(records(hello_body(sni(b"ignored", name_type=1)), 300))
        self.assertEqual(hello.server_name, "")

    def test_without_extensions(self):
        body = hello_body(b"")[4:-2]
        message = b"\x01" + len(body).to_bytes(3, "big") + body
        self.assertEqual(read(records(message, 100)), ClientHello("", 0x0303))

    def test_bounded(self):
        """A hello that would need more than max_buffered bytes fails, it is not waited for."""
        reader = ClientHelloReader(max_buffered=1000)
        reader.feed(b"\x16\x03\x01\x03\xe8")  # a 1000-byte record: past the bound
        self.assertRaises(ProtocolError, reader.next_event)
        reader = ClientHelloReader(max_buffered=1000)
        self.assertIs(read(records(b"\x01\x00\x10\x00" + b"\x00" * 100, 1), reader), NEED_MORE)
        reader.feed(records(b"\x00" * 200, 1))
        self.assertRaises(ProtocolError, reader.next_event)


class GarbageTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=8), st.integers(min_value=64, max_value=4096))
    def test_garbage_only_raises_protocol_error(self, chunks, bound):
        reader = ClientHelloReader(max_buffered=bound)
        for chunk in chunks:
            reader.feed(chunk)
            try:
                event = reader.next_event()
            except ProtocolError:
                return
            if event is NEED_MORE:
                self.assertLessEqual(len(reader.buffered), bound + 300)
            else:
                self.assertIsInstance(event, ClientHello)

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_mutated_real_hello(self, data):
        flight = bytearray(client_hello("mutate.test"))
        for _ in range(data.draw(st.integers(1, 4))):
            flight[data.draw(st.integers(0, len(flight) - 1))] = data.draw(st.integers(0, 255))
        try:
            event = read(bytes(flight))
        except ProtocolError:
            return
        self.assertTrue(event is NEED_MORE or isinstance(event, ClientHello))
