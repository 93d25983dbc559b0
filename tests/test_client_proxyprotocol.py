"""PROXY protocol headers written by frpc to the local service (wire-protocol.md §7.4)."""

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.client.proxyprotocol import V2_SIGNATURE, proxy_protocol_header


def parse_v2(header: bytes):
    """Decode a v2 TCP header independently of the builder (spec layout)."""
    assert header[:12] == V2_SIGNATURE
    command, family = header[12], header[13]
    (length,) = struct.unpack(">H", header[14:16])
    body = header[16:]
    assert len(body) == length
    size = {0x11: 4, 0x21: 16}[family]
    src = ipaddress.ip_address(body[:size])
    dst = ipaddress.ip_address(body[size:2 * size])
    sport, dport = struct.unpack(">HH", body[2 * size:])
    return command, family, src, dst, sport, dport


class ProxyProtocolV1Tests(SynchronousTestCase):
    def test_tcp4(self) -> None:
        self.assertEqual(
            proxy_protocol_header("v1", "192.168.1.7", 42414, "10.0.0.1", 6000),
            b"PROXY TCP4 192.168.1.7 10.0.0.1 42414 6000\r\n",
        )

    def test_tcp6(self) -> None:
        self.assertEqual(
            proxy_protocol_header("v1", "2001:db8::1", 1234, "::1", 443),
            b"PROXY TCP6 2001:db8::1 ::1 1234 443\r\n",
        )

    def test_missing_destination_is_localhost_port_zero(self) -> None:
        # frps sends no dst for http proxies; frp then uses 127.0.0.1 (and port 0).
        self.assertEqual(
            proxy_protocol_header("v1", "1.2.3.4", 5555), b"PROXY TCP4 1.2.3.4 127.0.0.1 5555 0\r\n"
        )

    def test_v4_mapped_source_is_ipv4(self) -> None:
        self.assertEqual(
            proxy_protocol_header("v1", "::ffff:1.2.3.4", 5, "1.1.1.1", 6), b"PROXY TCP4 1.2.3.4 1.1.1.1 5 6\r\n"
        )

    def test_mixed_families_become_ipv6(self) -> None:
        """go-proxyproto 0.7 (frp 0.65) writes the IPv4 side of a TCP6 header with Go's
        ``net.IP.String``, which prints a v4-mapped address in dotted form; v2 carries it
        v4-mapped."""
        self.assertEqual(
            proxy_protocol_header("v1", "2001:db8::1", 5, "1.1.1.1", 6),
            b"PROXY TCP6 2001:db8::1 1.1.1.1 5 6\r\n",
        )
        self.assertTrue(proxy_protocol_header("v2", "2001:db8::1", 5, "1.1.1.1", 6).endswith(
            b"\x00" * 10 + b"\xff\xff\x01\x01\x01\x01\x00\x05\x00\x06"))

    def test_no_header_without_source(self) -> None:
        self.assertEqual(proxy_protocol_header("v1", "", 0, "1.1.1.1", 6), b"")
        self.assertEqual(proxy_protocol_header("v2", "1.2.3.4", 0, "1.1.1.1", 6), b"")

    def test_unparsable_source_is_unknown(self) -> None:
        self.assertEqual(proxy_protocol_header("v1", "not-an-ip", 5, "1.1.1.1", 6), b"PROXY UNKNOWN\r\n")

    def test_unknown_version(self) -> None:
        self.assertRaises(ValueError, proxy_protocol_header, "v3", "1.2.3.4", 5)


class ProxyProtocolV2Tests(SynchronousTestCase):
    def test_tcp4_bytes(self) -> None:
        self.assertEqual(
            proxy_protocol_header("v2", "192.168.1.7", 42414, "10.0.0.1", 6000),
            bytes.fromhex("0d0a0d0a000d0a515549540a" "21" "11" "000c" "c0a80107" "0a000001" "a5ae" "1770"),
        )

    def test_tcp6_bytes(self) -> None:
        self.assertEqual(
            proxy_protocol_header("v2", "::1", 1, "::2", 2),
            V2_SIGNATURE
            + bytes([0x21, 0x21, 0x00, 0x24])
            + bytes(15) + b"\x01"
            + bytes(15) + b"\x02"
            + b"\x00\x01\x00\x02",
        )

    def test_unparsable_source_is_local(self) -> None:
        self.assertEqual(proxy_protocol_header("v2", "?", 5, "1.1.1.1", 6), V2_SIGNATURE + b"\x20\x00\x00\x00")

    @given(
        st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
        st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
        st.integers(1, 65535),
        st.integers(0, 65535),
    )
    def test_v2_round_trip(self, src, dst, sport, dport) -> None:
        command, family, psrc, pdst, psport, pdport = parse_v2(
            proxy_protocol_header("v2", str(src), sport, str(dst), dport)
        )
        self.assertEqual(command, 0x21)
        self.assertEqual((psport, pdport), (sport, dport))

        def norm(ip):
            ip = ipaddress.ip_address(ip)
            return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip

        self.assertEqual((norm(psrc), norm(pdst)), (norm(src), norm(dst)))
        self.assertEqual(family == 0x11, norm(src).version == 4 and norm(dst).version == 4)
