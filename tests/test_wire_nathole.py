"""frp's NAT classification and the punching probe datagram (frptw.wire.nathole)."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire import nathole as n
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import MessageReader, NatHoleSid


class ClassifyTests(SynchronousTestCase):
    def test_table_of_wire_protocol_9_4(self):
        cases = [
            (["1.2.3.4:6000", "1.2.3.4:6000"], n.NatFeature("EasyNAT", "BehaviorNoChange")),
            (["1.2.3.4:6000", "1.2.3.4:6001"], n.NatFeature("HardNAT", "BehaviorPortChanged", 1, True)),
            (["1.2.3.4:6000", "1.2.3.4:6005"], n.NatFeature("HardNAT", "BehaviorPortChanged", 5, True)),
            (["1.2.3.4:6006", "1.2.3.4:6000"], n.NatFeature("HardNAT", "BehaviorPortChanged", 6, False)),
            (["1.2.3.4:6000", "1.2.3.5:6000"], n.NatFeature("HardNAT", "BehaviorIPChanged")),
            (["1.2.3.4:6000", "1.2.3.5:6001"], n.NatFeature("HardNAT", "BehaviorBothChanged")),
        ]
        for mapped, feature in cases:
            self.assertEqual(n.classify(mapped, []), feature, mapped)

    def test_public_network_when_a_mapped_ip_is_local(self):
        self.assertTrue(n.classify(["198.51.100.2:1", "198.51.100.2:1"], ["198.51.100.2"]).public_network)

    def test_errors(self):
        self.assertRaises(ValueError, n.classify, ["1.2.3.4:5"], [])
        self.assertRaises(ValueError, n.classify, ["1.2.3.4:5", "nonsense"], [])

    def test_compact_drops_consecutive_duplicates_only(self):
        self.assertEqual(n.compact(["a", "a", "b", "a"]), ["a", "b", "a"])

    def test_transaction_id_shape(self):
        tid = n.new_transaction_id(1795641218.7)
        self.assertTrue(tid.startswith("1795641218"))
        self.assertEqual(len(tid), 26)


class ProbeTests(SynchronousTestCase):
    key = derive_key("sk")

    def test_golib_format_iv_then_cfb_of_v1_message(self):
        data = n.encode_probe(self.key, "t1", "s1", False, 3)
        reader = MessageReader()
        reader.feed(AESCFBCodec(self.key).decode(data))
        self.assertEqual(reader.next_message(), NatHoleSid(transaction_id="t1", sid="s1", nonce="000"))
        self.assertEqual(len(data), 16 + 9 + len(b'{"transaction_id":"t1","sid":"s1","nonce":"000"}'))

    def test_round_trip_with_response_flag(self):
        probe = n.decode_probe(self.key, n.encode_probe(self.key, "t", "s", True, 0))
        self.assertEqual((probe.sid, probe.response), ("s", True))

    def test_wrong_key_or_garbage_refused(self):
        data = n.encode_probe(self.key, "t", "s", False, 5)
        self.assertRaises(ProtocolError, n.decode_probe, derive_key("other"), data)
        self.assertRaises(ProtocolError, n.decode_probe, self.key, data[:20])
        self.assertRaises(ProtocolError, n.decode_probe, self.key, b"x" * 1025)

    @given(st.binary(max_size=300))
    def test_random_datagrams_never_crash(self, data):
        try:
            n.decode_probe(self.key, data)
        except ProtocolError:
            pass
