"""STUN codec (frptw.wire.stun): RFC 5769 test vectors, frp's attribute preferences, and
hypothesis round trips and garbage."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire import stun
from frptw.wire.errors import ProtocolError

# RFC 5769 §2.2, sample IPv4 response (SOFTWARE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT).
RFC5769_IPV4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
# RFC 5769 §2.3, sample IPv6 response.
RFC5769_IPV6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)


class VectorTests(SynchronousTestCase):
    def test_rfc5769_ipv4_response(self):
        message = stun.decode(RFC5769_IPV4)
        self.assertEqual(message.type, stun.BINDING_SUCCESS)
        self.assertEqual(message.transaction_id, bytes.fromhex("b7e7a701bc34d686fa87dfae"))
        self.assertEqual(message.mapped, ("192.0.2.1", 32853))
        self.assertIsNone(message.other)

    def test_rfc5769_ipv6_response(self):
        self.assertEqual(stun.decode(RFC5769_IPV6).mapped, ("2001:db8:1234:5678:11:2233:4455:6677", 32853))

    def test_bare_binding_request_as_frp_sends(self):
        tid = bytes(range(12))
        self.assertEqual(stun.encode(stun.binding_request(tid)), bytes.fromhex("000100002112a442") + tid)

    def test_xor_mapped_preferred_over_mapped_and_other_over_changed(self):
        tid = b"t" * 12
        message = stun.StunMessage(stun.BINDING_SUCCESS, tid, [
            (stun.ATTR_MAPPED_ADDRESS, ("198.51.100.9", 1)),
            (stun.ATTR_CHANGED_ADDRESS, ("203.0.113.9", 2)),
            (stun.ATTR_XOR_MAPPED_ADDRESS, ("198.51.100.2", 40000)),
            (stun.ATTR_OTHER_ADDRESS, ("203.0.113.2", 3479)),
        ])
        decoded = stun.decode(stun.encode(message))
        self.assertEqual(decoded.mapped, ("198.51.100.2", 40000))
        self.assertEqual(decoded.other, ("203.0.113.2", 3479))

    def test_rfc3489_server_changed_address(self):
        message = stun.StunMessage(stun.BINDING_SUCCESS, b"t" * 12, [
            (stun.ATTR_MAPPED_ADDRESS, ("198.51.100.9", 1)), (stun.ATTR_CHANGED_ADDRESS, ("203.0.113.9", 2))])
        decoded = stun.decode(stun.encode(message))
        self.assertEqual((decoded.mapped, decoded.other), (("198.51.100.9", 1), ("203.0.113.9", 2)))

    def test_response_names_the_alternate_server(self):
        request = stun.binding_request()
        response = stun.decode(stun.encode(stun.binding_response(request, ("192.0.2.7", 5), ("203.0.113.2", 9))))
        self.assertEqual(response.transaction_id, request.transaction_id)
        self.assertEqual((response.mapped, response.other), (("192.0.2.7", 5), ("203.0.113.2", 9)))


class GarbageTests(SynchronousTestCase):
    def test_refused(self):
        good = stun.encode(stun.binding_response(stun.binding_request(), ("192.0.2.7", 5)))
        for bad in (b"", b"\x00" * 19, b"\xc0" + good[1:], good[:4] + b"\x00\x00\x00\x00" + good[8:], good + b"\x00",
                    good[:-1], good[:2] + b"\x00\x09" + good[4:], good[:20] + b"\x00\x20\x00\x07" + good[24:]):
            self.assertRaises(ProtocolError, stun.decode, bad)

    @given(st.binary(max_size=200))
    def test_random_bytes_never_crash(self, data):
        try:
            stun.decode(data)
        except ProtocolError:
            pass

    @given(st.lists(st.tuples(st.sampled_from([stun.ATTR_MAPPED_ADDRESS, stun.ATTR_XOR_MAPPED_ADDRESS,
                                               stun.ATTR_OTHER_ADDRESS, stun.ATTR_CHANGED_ADDRESS]),
                              st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
                              st.integers(0, 65535)), max_size=6),
           st.binary(min_size=12, max_size=12))
    def test_round_trip(self, attrs, tid):
        message = stun.StunMessage(stun.BINDING_SUCCESS, tid, [(k, (str(ip), port)) for k, ip, port in attrs])
        self.assertEqual(stun.decode(stun.encode(message)), message)
