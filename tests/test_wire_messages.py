"""frp v1 message framing and JSON: byte-exact vectors from real frp captures, Go JSON rules,
the incremental reader's bounds, and hypothesis round trips / garbage."""

import base64
import dataclasses
import json
import struct
from typing import get_type_hints

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire import messages as m
from frptw.wire.errors import ProtocolError


def frame(type_byte: bytes, body: bytes) -> bytes:
    return type_byte + struct.pack(">q", len(body)) + body


# Real frp 0.65 captures and documented examples (wire-protocol.md §3.6, §5.2, §5.4, §5.8,
# §7.1, §8, §9.1, §9.4), paired with the message objects that must produce them.
VECTORS = [
    # §5.2: frpc 0.65.0 with default settings (the exact 154-byte body, header 6f...9a).
    (m.Login(version="0.65.0", os="linux", arch="amd64", privilege_key="5a0b5c58b8214ef5bd8b4ccb92a604d8",
             timestamp=1795640934, pool_count=1),
     b'{"version":"0.65.0","os":"linux","arch":"amd64","privilege_key":"5a0b5c58b8214ef5bd8b4ccb92a604d8",'
     b'"timestamp":1795640934,"client_spec":{},"pool_count":1}'),
    # §5.8: user, metadatas, poolCount 2.
    (m.Login(version="0.65.0", os="linux", arch="amd64", user="u1", privilege_key="65e1eefc2880057a04b164ee64b6581b",
             timestamp=1795641340, metas={"k": "v"}, pool_count=2),
     b'{"version":"0.65.0","os":"linux","arch":"amd64","user":"u1","privilege_key":"65e1eefc2880057a04b164ee64b6581b",'
     b'"timestamp":1795641340,"metas":{"k":"v"},"client_spec":{},"pool_count":2}'),
    # Every Login field, in Go struct order (hostname after version, client_id after run_id).
    (m.Login(version="0.70.1", hostname="h", os="linux", arch="arm64", user="u", privilege_key="k", timestamp=1,
             run_id="r", client_id="c", metas={"b": "2", "a": "1"},
             client_spec=m.ClientSpec(type="ssh-tunnel", always_auth_pass=True), pool_count=3),
     b'{"version":"0.70.1","hostname":"h","os":"linux","arch":"arm64","user":"u","privilege_key":"k","timestamp":1,'
     b'"run_id":"r","client_id":"c","metas":{"a":"1","b":"2"},'
     b'"client_spec":{"type":"ssh-tunnel","always_auth_pass":true},"pool_count":3}'),
    # §5.4
    (m.LoginResp(version="0.65.0", run_id="43dae6677cd93de8"),
     b'{"version":"0.65.0","run_id":"43dae6677cd93de8"}'),
    (m.LoginResp(version="0.65.0", error="token in login doesn't match token from configuration"),
     b'{"version":"0.65.0","error":"token in login doesn\'t match token from configuration"}'),
    # §5.8 NewProxy captures.
    (m.NewProxy(proxy_name="u1.s", proxy_type="stcp", sk="sk", allow_users=["*"]),
     b'{"proxy_name":"u1.s","proxy_type":"stcp","sk":"sk","allow_users":["*"]}'),
    (m.NewProxy(proxy_name="u1.web", proxy_type="http", use_encryption=True, use_compression=True,
                bandwidth_limit="1MB", bandwidth_limit_mode="server", group="g", group_key="gk", metas={"m": "n"},
                annotations={"ann": "x"}, custom_domains=["a.test"], subdomain="sub", locations=["/", "/api"],
                http_user="hu", http_pwd="hp", host_header_rewrite="x.local", headers={"X-A": "1"},
                response_headers={"X-B": "2"}, route_by_http_user="hu"),
     b'{"proxy_name":"u1.web","proxy_type":"http","use_encryption":true,"use_compression":true,'
     b'"bandwidth_limit":"1MB","bandwidth_limit_mode":"server","group":"g","group_key":"gk","metas":{"m":"n"},'
     b'"annotations":{"ann":"x"},"custom_domains":["a.test"],"subdomain":"sub","locations":["/","/api"],'
     b'"http_user":"hu","http_pwd":"hp","host_header_rewrite":"x.local","headers":{"X-A":"1"},'
     b'"response_headers":{"X-B":"2"},"route_by_http_user":"hu"}'),
    (m.NewProxy(proxy_name="u1.mux", proxy_type="tcpmux", custom_domains=["m.test"], multiplexer="httpconnect"),
     b'{"proxy_name":"u1.mux","proxy_type":"tcpmux","custom_domains":["m.test"],"multiplexer":"httpconnect"}'),
    (m.NewProxy(proxy_name="u1.u", proxy_type="udp"),
     b'{"proxy_name":"u1.u","proxy_type":"udp"}'),
    (m.NewProxy(proxy_name="t", proxy_type="tcp", remote_port=6000),
     b'{"proxy_name":"t","proxy_type":"tcp","remote_port":6000}'),
    # §5.8 / §5.9 / §3.6
    (m.NewProxyResp(proxy_name="t", remote_addr=":6000"),
     b'{"proxy_name":"t","remote_addr":":6000"}'),
    (m.NewProxyResp(proxy_name="u1.web", error="proxy [u1.web] already exists"),
     b'{"proxy_name":"u1.web","error":"proxy [u1.web] already exists"}'),
    (m.CloseProxy(proxy_name="u1.web"), b'{"proxy_name":"u1.web"}'),
    (m.NewWorkConn(run_id="feedfacefeedface", privilege_key="65e1eefc2880057a04b164ee64b6581b", timestamp=1795641340),
     b'{"run_id":"feedfacefeedface","privilege_key":"65e1eefc2880057a04b164ee64b6581b","timestamp":1795641340}'),
    (m.ReqWorkConn(), b"{}"),
    # §7.1 / §5.3
    (m.StartWorkConn(proxy_name="t1", src_addr="127.0.0.1", dst_addr="127.0.0.1", src_port=42414, dst_port=31711),
     b'{"proxy_name":"t1","src_addr":"127.0.0.1","dst_addr":"127.0.0.1","src_port":42414,"dst_port":31711}'),
    (m.StartWorkConn(error="token in NewWorkConn doesn't match token from configuration"),
     b'{"error":"token in NewWorkConn doesn\'t match token from configuration"}'),
    # §9.1
    (m.NewVisitorConn(run_id="feedfacefeedface", proxy_name="u1.s", sign_key="0f7d8f092b573f8bd9cd53620a986962",
                      timestamp=1795641356, use_encryption=True),
     b'{"run_id":"feedfacefeedface","proxy_name":"u1.s","sign_key":"0f7d8f092b573f8bd9cd53620a986962",'
     b'"timestamp":1795641356,"use_encryption":true}'),
    (m.NewVisitorConnResp(proxy_name="u1.s", error="visitor connection of [u1.s] auth failed"),
     b'{"proxy_name":"u1.s","error":"visitor connection of [u1.s] auth failed"}'),
    (m.Ping(privilege_key="65e1eefc2880057a04b164ee64b6581b", timestamp=1795641340),
     b'{"privilege_key":"65e1eefc2880057a04b164ee64b6581b","timestamp":1795641340}'),
    (m.Ping(), b"{}"),
    (m.Pong(error="token in heartbeat doesn't match token from configuration"),
     b'{"error":"token in heartbeat doesn\'t match token from configuration"}'),
    # §8: both directions of a real UDP exchange.
    (m.UDPPacket(c=b"hi\x00\xff", r=m.UDPAddr("127.0.0.1", 53055)),
     b'{"c":"aGkA/w==","r":{"IP":"127.0.0.1","Port":53055,"Zone":""}}'),
    (m.UDPPacket(c=b"echo:hi\x00\xff", r=m.UDPAddr("127.0.0.1", 53055)),
     b'{"c":"ZWNobzpoaQD/","r":{"IP":"127.0.0.1","Port":53055,"Zone":""}}'),
    (m.UDPPacket(c=b"x", l=m.UDPAddr("::1", 1, "lo"), r=m.UDPAddr()),
     b'{"c":"eA==","l":{"IP":"::1","Port":1,"Zone":"lo"},"r":{"IP":"","Port":0,"Zone":""}}'),
    # §9.4: pre-check, request, both responses, sid, probe, report.
    (m.NatHoleVisitor(transaction_id="1795641218926124a37f47f270", proxy_name="u1.x", pre_check=True),
     b'{"transaction_id":"1795641218926124a37f47f270","proxy_name":"u1.x","pre_check":true}'),
    (m.NatHoleVisitor(transaction_id="t1", proxy_name="u1.x", protocol="quic", sign_key="s", timestamp=5,
                      mapped_addrs=["1.2.3.4:5", "1.2.3.4:6"], assisted_addrs=["10.0.0.1:5"]),
     b'{"transaction_id":"t1","proxy_name":"u1.x","protocol":"quic","sign_key":"s","timestamp":5,'
     b'"mapped_addrs":["1.2.3.4:5","1.2.3.4:6"],"assisted_addrs":["10.0.0.1:5"]}'),
    (m.NatHoleClient(transaction_id="t2", proxy_name="u1.x", sid="S", mapped_addrs=["5.6.7.8:6000"],
                     assisted_addrs=["10.0.0.2:50000"]),
     b'{"transaction_id":"t2","proxy_name":"u1.x","sid":"S","mapped_addrs":["5.6.7.8:6000"],'
     b'"assisted_addrs":["10.0.0.2:50000"]}'),
    (m.NatHoleResp(transaction_id="T0"), b'{"transaction_id":"T0","detect_behavior":{}}'),
    (m.NatHoleResp(transaction_id="3t", sid="s", protocol="quic", candidate_addrs=["5.6.7.8:6000", "5.6.7.8:6001"],
                   assisted_addrs=["10.0.0.2:50000"],
                   detect_behavior=m.NatHoleDetectBehavior(role="receiver", mode=1, ttl=7, read_timeout=5000,
                                                           candidate_ports=[m.PortsRange(5995, 6007)])),
     b'{"transaction_id":"3t","sid":"s","protocol":"quic","candidate_addrs":["5.6.7.8:6000","5.6.7.8:6001"],'
     b'"assisted_addrs":["10.0.0.2:50000"],"detect_behavior":{"role":"receiver","mode":1,"ttl":7,'
     b'"read_timeout":5000,"candidate_ports":[{"from":5995,"to":6007}]}}'),
    (m.NatHoleResp(transaction_id="T", detect_behavior=m.NatHoleDetectBehavior(
        role="sender", send_delay_ms=3000, send_random_ports=1000, listen_random_ports=256), error="e"),
     b'{"transaction_id":"T","detect_behavior":{"role":"sender","send_delay_ms":3000,"send_random_ports":1000,'
     b'"listen_random_ports":256},"error":"e"}'),
    (m.NatHoleSid(sid="S"), b'{"sid":"S"}'),
    # A probe: "response":false is dropped by omitempty, so it never appears on the wire.
    (m.NatHoleSid(transaction_id="T", sid="S", nonce="000"), b'{"transaction_id":"T","sid":"S","nonce":"000"}'),
    (m.NatHoleSid(transaction_id="T", sid="S", response=True), b'{"transaction_id":"T","sid":"S","response":true}'),
    (m.NatHoleReport(sid="S", success=True), b'{"sid":"S","success":true}'),
    (m.NatHoleReport(sid="S"), b'{"sid":"S"}'),
]


class VectorTests(SynchronousTestCase):
    def test_every_message_type_has_a_vector(self):
        covered = {type(msg) for msg, _ in VECTORS}
        self.assertEqual(covered, set(m.MESSAGE_TYPES.values()))
        self.assertEqual(len(m.MESSAGE_TYPES), 18)

    def test_encode_vectors(self):
        for msg, body in VECTORS:
            self.assertEqual(m.encode_message(msg), frame(msg.TYPE, body), msg)

    def test_decode_vectors(self):
        for msg, body in VECTORS:
            reader = m.MessageReader()
            reader.feed(frame(msg.TYPE, body))
            self.assertEqual(reader.next_message(), msg)
            self.assertIsNone(reader.next_message())

    def test_captured_headers(self):
        """Lengths seen on the wire: Login 0x9a (§5.2), LoginResp 0x30 (§5.4), ReqWorkConn 2 (§4.1)."""
        self.assertEqual(m.encode_message(VECTORS[0][0])[:9], bytes.fromhex("6f000000000000009a"))
        self.assertEqual(m.encode_message(m.LoginResp(version="0.65.0", run_id="43dae6677cd93de8"))[:9],
                         bytes.fromhex("310000000000000030"))
        self.assertEqual(m.encode_message(m.ReqWorkConn()), bytes.fromhex("7200000000000000027b7d"))

    def test_registry(self):
        expected = {"o": m.Login, "1": m.LoginResp, "p": m.NewProxy, "2": m.NewProxyResp, "c": m.CloseProxy,
                    "w": m.NewWorkConn, "r": m.ReqWorkConn, "s": m.StartWorkConn, "v": m.NewVisitorConn,
                    "3": m.NewVisitorConnResp, "h": m.Ping, "4": m.Pong, "u": m.UDPPacket, "i": m.NatHoleVisitor,
                    "n": m.NatHoleClient, "m": m.NatHoleResp, "5": m.NatHoleSid, "6": m.NatHoleReport}
        self.assertEqual(dict(m.MESSAGE_TYPES), {k.encode(): v for k, v in expected.items()})
        for type_byte, cls in m.MESSAGE_TYPES.items():
            self.assertEqual(cls.TYPE, type_byte)

    def test_minimal_login_accepted(self):
        """frps accepts a Login without client_spec/os/arch (§5.2); so do we."""
        msg = m.decode_body(ord("o"), b'{"version":"0.65.0","privilege_key":"k","timestamp":1,"pool_count":1}')
        self.assertEqual(msg, m.Login(version="0.65.0", privilege_key="k", timestamp=1, pool_count=1))


class GoJSONTests(SynchronousTestCase):
    """Go encoding/json behaviour we mirror (§4.3)."""

    def decode(self, cls, body: bytes):
        return m.decode_body(cls.TYPE[0], body)

    def test_html_and_line_separator_escaping(self):
        self.assertEqual(m.encode_body(m.CloseProxy(proxy_name="<a>&\u2028\u2029")),
                         b'{"proxy_name":"\\u003ca\\u003e\\u0026\\u2028\\u2029"}')
        self.assertEqual(self.decode(m.CloseProxy, b'{"proxy_name":"\\u003ca\\u003e\\u0026"}'),
                         m.CloseProxy(proxy_name="<a>&"))

    def test_non_ascii_and_control_characters(self):
        """Go writes non-ASCII as raw UTF-8 and control characters as lowercase \\u00xx."""
        self.assertEqual(m.encode_body(m.CloseProxy(proxy_name="é\x01\n\t\"\\\x7f")),
                         '{"proxy_name":"é\\u0001\\n\\t\\"\\\\\x7f"}'.encode())

    def test_map_keys_sorted(self):
        body = m.encode_body(m.NewProxy(headers={"b": "1", "a": "2", "C": "3"}))
        self.assertEqual(body, b'{"headers":{"C":"3","a":"2","b":"1"}}')

    def test_omitempty_drops_zero_values_but_not_structs(self):
        self.assertEqual(m.encode_body(m.Login()), b'{"client_spec":{}}')
        self.assertEqual(m.encode_body(m.NatHoleResp()), b'{"detect_behavior":{}}')
        self.assertEqual(m.encode_body(m.NewProxy(use_encryption=False, remote_port=0, custom_domains=[], headers={})),
                         b"{}")
        self.assertEqual(m.encode_body(m.UDPPacket()), b"{}")

    def test_unknown_keys_ignored(self):
        body = b'{"proxy_name":"a","future":{"x":[1,2,{"y":null}]},"z":1.5,"big":' + b"9" * 5000 + b"}"
        self.assertEqual(self.decode(m.CloseProxy, body), m.CloseProxy(proxy_name="a"))

    def test_case_insensitive_keys(self):
        self.assertEqual(self.decode(m.StartWorkConn, b'{"PROXY_NAME":"a","Src_Port":5}'),
                         m.StartWorkConn(proxy_name="a", src_port=5))
        self.assertEqual(self.decode(m.UDPPacket, b'{"C":"eA==","R":{"ip":"1.2.3.4","port":1,"zone":"z"}}'),
                         m.UDPPacket(c=b"x", r=m.UDPAddr("1.2.3.4", 1, "z")))
        # Go folds with ToUpper(ToLower(r)): the Kelvin sign matches "k", the long s matches "s".
        self.assertEqual(self.decode(m.NatHoleSid, '{"\u017fid":"x"}'.encode()), m.NatHoleSid(sid="x"))
        self.assertEqual(self.decode(m.Ping, '{"privilege_\u212aey":"x"}'.encode()), m.Ping(privilege_key="x"))
        # ...but a rune that Python would expand ("ß" -> "SS") does not match "ss".
        self.assertEqual(self.decode(m.NatHoleReport, '{"succeß":true}'.encode()), m.NatHoleReport())

    def test_duplicate_keys_last_wins(self):
        self.assertEqual(self.decode(m.CloseProxy, b'{"PROXY_NAME":"fold","proxy_name":"exact"}'),
                         m.CloseProxy(proxy_name="exact"))
        self.assertEqual(self.decode(m.CloseProxy, b'{"proxy_name":"exact","Proxy_Name":"fold"}'),
                         m.CloseProxy(proxy_name="fold"))
        self.assertEqual(self.decode(m.CloseProxy, b'{"proxy_name":"a","proxy_name":"b"}'),
                         m.CloseProxy(proxy_name="b"))

    def test_null_leaves_zero_value(self):
        body = b'{"proxy_name":null,"use_encryption":null,"remote_port":null,"custom_domains":null,"metas":null}'
        self.assertEqual(self.decode(m.NewProxy, body), m.NewProxy())
        self.assertEqual(self.decode(m.NewProxy, b'{"custom_domains":["a",null],"headers":{"k":null}}'),
                         m.NewProxy(custom_domains=["a", ""], headers={"k": ""}))
        self.assertEqual(self.decode(m.UDPPacket, b'{"c":null,"r":null}'), m.UDPPacket())
        self.assertEqual(self.decode(m.NatHoleResp, b'{"detect_behavior":{"candidate_ports":[null]}}'),
                         m.NatHoleResp(detect_behavior=m.NatHoleDetectBehavior(candidate_ports=[m.PortsRange()])))

    def test_wrong_types_rejected(self):
        bad = [
            (m.CloseProxy, b'{"proxy_name":1}'),
            (m.CloseProxy, b'{"proxy_name":true}'),
            (m.NewProxy, b'{"use_encryption":1}'),
            (m.NewProxy, b'{"use_encryption":"true"}'),
            (m.NewProxy, b'{"remote_port":true}'),
            (m.NewProxy, b'{"remote_port":1.0}'),
            (m.NewProxy, b'{"remote_port":1e3}'),
            (m.NewProxy, b'{"remote_port":"80"}'),
            (m.Login, b'{"timestamp":9223372036854775808}'),
            (m.Login, b'{"timestamp":-9223372036854775809}'),
            (m.Login, b'{"timestamp":' + b"9" * 5000 + b'}'),
            (m.StartWorkConn, b'{"src_port":-1}'),
            (m.StartWorkConn, b'{"dst_port":65536}'),
            (m.NewProxy, b'{"custom_domains":"a"}'),
            (m.NewProxy, b'{"custom_domains":[1]}'),
            (m.NewProxy, b'{"headers":[]}'),
            (m.NewProxy, b'{"headers":{"a":1}}'),
            (m.Login, b'{"client_spec":[]}'),
            (m.Login, b'{"client_spec":{"always_auth_pass":"yes"}}'),
            (m.NatHoleResp, b'{"detect_behavior":{"candidate_ports":{}}}'),
            (m.NatHoleResp, b'{"detect_behavior":{"candidate_ports":[1]}}'),
            (m.UDPPacket, b'{"c":1}'),
            (m.UDPPacket, b'{"c":"not base64!"}'),
            (m.UDPPacket, b'{"c":"eA"}'),
            (m.UDPPacket, b'{"r":"1.2.3.4:5"}'),
            (m.UDPPacket, b'{"r":{"IP":"1.2.3.400"}}'),
            (m.UDPPacket, b'{"r":{"IP":"fe80::1%eth0"}}'),
            (m.UDPPacket, b'{"r":{"IP":"localhost"}}'),
            (m.UDPPacket, b'{"r":{"Port":"1"}}'),
        ]
        for cls, body in bad:
            self.assertRaises(ProtocolError, self.decode, cls, body)

    def test_malformed_json_rejected(self):
        for body in [b"", b"{", b"[]", b"null", b"1", b'"x"', b"{}x", b'{"a":NaN}', b'{"a":Infinity}',
                     b'{"a":-Infinity}', b"\xef\xbb\xbf{}", b"{'a':1}", b'{"a":1,}', b"[" * 20000,
                     b'{"a":' + b"[" * 20000 + b"}", b'{"a":' + b"9" * 5000 + b"x}"]:
            self.assertRaises(ProtocolError, self.decode, m.Ping, body)

    def test_json_must_be_utf8(self):
        """Go decodes bodies as UTF-8 only; Python's json would otherwise detect UTF-16."""
        self.assertRaises(ProtocolError, self.decode, m.Ping, '{"timestamp":1}'.encode("utf-16"))

    def test_invalid_text_replaced_like_go(self):
        """Invalid UTF-8 and lone surrogate escapes in strings become U+FFFD, as in Go."""
        self.assertEqual(self.decode(m.CloseProxy, b'{"proxy_name":"a\xffb"}'), m.CloseProxy(proxy_name="a\ufffdb"))
        msg = self.decode(m.NewProxy, b'{"proxy_name":"\\ud800x","headers":{"\\udfff":"\\ud800"}}')
        self.assertEqual(msg, m.NewProxy(proxy_name="\ufffdx", headers={"\ufffd": "\ufffd"}))
        self.assertEqual(self.decode(m.CloseProxy, b'{"proxy_name":"\\ud83d\\ude00"}'),
                         m.CloseProxy(proxy_name="\U0001f600"))
        # Whatever was decoded can be encoded again.
        m.encode_message(msg)

    def test_lone_surrogate_in_local_string_encodes_as_replacement(self):
        self.assertEqual(m.encode_body(m.CloseProxy(proxy_name="a\ud800")), '{"proxy_name":"a\ufffd"}'.encode())

    def test_empty_ip_is_nil(self):
        self.assertEqual(self.decode(m.UDPPacket, b'{"r":{"IP":"","Port":1}}'), m.UDPPacket(r=m.UDPAddr("", 1)))


class SizeLimitTests(SynchronousTestCase):
    def test_largest_body_encodes(self):
        # {"proxy_name":"..."} is 17 bytes of framing around the name.
        msg = m.CloseProxy(proxy_name="x" * (m.MAX_BODY_LENGTH - 17))
        self.assertEqual(len(m.encode_message(msg)), m.HEADER_LENGTH + m.MAX_BODY_LENGTH)

    def test_oversize_body_is_a_local_error(self):
        exc = self.assertRaises(m.MessageTooLarge, m.encode_message,
                                m.CloseProxy(proxy_name="x" * (m.MAX_BODY_LENGTH - 16)))
        self.assertIsInstance(exc, ValueError)
        self.assertNotIsInstance(exc, ProtocolError)

    def test_udp_payload_limit(self):
        """About 7.5 KB of datagram fits in v1 framing (§8); 7.7 KB does not."""
        addr = m.UDPAddr("255.255.255.255", 65535)
        m.encode_message(m.UDPPacket(c=b"\0" * 7600, r=addr))
        self.assertRaises(m.MessageTooLarge, m.encode_message, m.UDPPacket(c=b"\0" * 7700, r=addr))


class ReaderTests(SynchronousTestCase):
    def test_split_anywhere(self):
        stream = b"".join(m.encode_message(msg) for msg, _ in VECTORS)
        for size in (1, 2, 7, 9, 10, 100, 4096):
            reader = m.MessageReader()
            got = []
            for i in range(0, len(stream), size):
                reader.feed(stream[i:i + size])
                while (msg := reader.next_message()) is not None:
                    got.append(msg)
            self.assertEqual(got, [msg for msg, _ in VECTORS])
            self.assertEqual(reader.buffered, 0)

    def test_does_not_over_read(self):
        """The IV after LoginResp and data after StartWorkConn stay for take_unconsumed (§4.1)."""
        reader = m.MessageReader()
        reader.feed(m.encode_message(m.LoginResp(version="0.65.0", run_id="r")) + b"\x00" * 16 + b"cipher")
        self.assertEqual(reader.next_message(), m.LoginResp(version="0.65.0", run_id="r"))
        self.assertEqual(reader.buffered, 22)
        self.assertEqual(reader.take_unconsumed(), b"\x00" * 16 + b"cipher")
        self.assertEqual(reader.take_unconsumed(), b"")
        self.assertEqual(reader.buffered, 0)

    def test_take_unconsumed_after_partial_feed(self):
        reader = m.MessageReader()
        wire = m.encode_message(m.StartWorkConn(proxy_name="t")) + b"GET / HTTP/1.1\r\n"
        reader.feed(wire[:5])
        self.assertIsNone(reader.next_message())
        reader.feed(wire[5:])
        self.assertEqual(reader.next_message(), m.StartWorkConn(proxy_name="t"))
        self.assertEqual(reader.take_unconsumed(), b"GET / HTTP/1.1\r\n")

    def test_unknown_type_rejected_on_first_byte(self):
        """frps closes on an unknown type byte (§4.1, verified with "z"); we don't wait for more."""
        for byte in (b"z", b"d", b"\x00", b"\xff", b"{"):
            reader = m.MessageReader()
            reader.feed(byte)
            self.assertRaises(ProtocolError, reader.next_message)

    def test_bad_length_rejected_before_body(self):
        for length in (m.MAX_BODY_LENGTH + 1, -1, -(1 << 63), (1 << 63) - 1):
            reader = m.MessageReader()
            reader.feed(b"h" + struct.pack(">q", length))
            self.assertRaises(ProtocolError, reader.next_message)

    def test_max_length_accepted(self):
        body = b'{"proxy_name":"' + b"x" * (m.MAX_BODY_LENGTH - 17) + b'"}'
        reader = m.MessageReader()
        reader.feed(frame(b"c", body))
        self.assertEqual(reader.next_message(), m.CloseProxy(proxy_name="x" * (m.MAX_BODY_LENGTH - 17)))

    def test_bad_body_rejected_and_error_is_sticky(self):
        reader = m.MessageReader()
        reader.feed(frame(b"h", b"{oops}") + m.encode_message(m.Ping()))
        first = self.assertRaises(ProtocolError, reader.next_message)
        second = self.assertRaises(ProtocolError, reader.next_message)
        self.assertIs(first, second)
        self.assertEqual(reader.buffered, 0)

    def test_incomplete_body_waits(self):
        reader = m.MessageReader()
        wire = m.encode_message(m.Ping(timestamp=1))
        reader.feed(wire[:-1])
        self.assertIsNone(reader.next_message())
        self.assertEqual(reader.buffered, len(wire) - 1)
        reader.feed(wire[-1:])
        self.assertEqual(reader.next_message(), m.Ping(timestamp=1))

    def test_drained_reader_holds_at_most_one_message(self):
        """Many messages fed at once: once drained, the buffer holds only the partial tail."""
        one = m.encode_message(m.UDPPacket(c=b"\x01" * 7000, r=m.UDPAddr("127.0.0.1", 1)))
        reader = m.MessageReader()
        reader.feed(one * 50 + one[:-1])
        count = 0
        while reader.next_message() is not None:
            count += 1
        self.assertEqual(count, 50)
        self.assertEqual(reader.buffered, len(one) - 1)
        self.assertLessEqual(len(reader._buffer), m.HEADER_LENGTH + m.MAX_BODY_LENGTH)


# ---- hypothesis --------------------------------------------------------------------------------

_TEXT = st.text(max_size=12)


def _value_strategy(hint):
    if hint == m.Uint16:
        return st.integers(0, 0xFFFF)
    if hint == m.IPText:
        return st.one_of(st.just(""), st.ip_addresses().map(str))
    if hint is str:
        return _TEXT
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-(1 << 63), (1 << 63) - 1)
    if hint is bytes:
        return st.binary(max_size=64)
    if hint == list[str]:
        return st.lists(_TEXT, max_size=3)
    if hint == dict[str, str]:
        return st.dictionaries(_TEXT, _TEXT, max_size=3)
    args = getattr(hint, "__args__", ())
    if getattr(hint, "__origin__", None) is list:
        return st.lists(struct_strategy(args[0]), max_size=3)
    if type(None) in args:
        return st.none() | struct_strategy(next(a for a in args if a is not type(None)))
    return struct_strategy(hint)


def struct_strategy(cls):
    hints = get_type_hints(cls, include_extras=True)
    return st.builds(cls, **{f.name: _value_strategy(hints[f.name]) for f in dataclasses.fields(cls)})


any_message = st.sampled_from(sorted(m.MESSAGE_TYPES.values(), key=lambda c: c.__name__)).flatmap(struct_strategy)


def chunked(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(any_message)
    def test_round_trip(self, msg):
        wire = m.encode_message(msg)
        reader = m.MessageReader()
        reader.feed(wire)
        self.assertEqual(reader.next_message(), msg)
        self.assertEqual(reader.take_unconsumed(), b"")
        # Keys in Go struct order; exactly the zero-valued fields (but never a struct) omitted.
        keys = [key for key, _ in json.loads(wire[m.HEADER_LENGTH:], object_pairs_hook=lambda pairs: pairs)]
        fields = dataclasses.fields(msg)
        expected = [f.name for f in fields
                    if getattr(msg, f.name) or dataclasses.is_dataclass(getattr(msg, f.name))]
        self.assertEqual(keys, expected)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(any_message, max_size=8), st.lists(st.integers(0, 1 << 16), max_size=20),
           st.binary(max_size=40))
    def test_random_chunking(self, msgs, cuts, trailer):
        wire = b"".join(m.encode_message(msg) for msg in msgs)
        reader = m.MessageReader()
        got = []
        for piece in chunked(wire, cuts):
            reader.feed(piece)
            while (msg := reader.next_message()) is not None:
                got.append(msg)
        self.assertEqual(got, msgs)
        reader.feed(trailer)
        self.assertEqual(reader.take_unconsumed(), trailer)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2000), st.lists(st.integers(0, 4000), max_size=10))
    def test_garbage_only_raises_protocol_error(self, garbage, cuts):
        self._assert_garbage_handled(garbage, cuts)

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(sorted(m.MESSAGE_TYPES)), st.integers(-5, m.MAX_BODY_LENGTH + 5),
           st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=5))
    def test_garbage_after_valid_header(self, type_byte, length, body, cuts):
        self._assert_garbage_handled(type_byte + struct.pack(">q", length) + body, cuts)

    def _assert_garbage_handled(self, garbage, cuts):
        reader = m.MessageReader()
        try:
            for piece in chunked(garbage, cuts):
                reader.feed(piece)
                while reader.next_message() is not None:
                    pass
                self.assertLess(reader.buffered, m.HEADER_LENGTH + m.MAX_BODY_LENGTH)
        except ProtocolError:
            pass

    @settings(max_examples=500, deadline=None)
    @given(st.sampled_from(sorted(m.MESSAGE_TYPES.values(), key=lambda c: c.__name__)).flatmap(
        lambda cls: st.tuples(st.just(cls), st.dictionaries(
            st.sampled_from([f.name for f in dataclasses.fields(cls)] + ["IP", "Port", "x", "FROM", ""]),
            st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                             st.sampled_from(["IP", "Port", "Zone", "from", "to", "role", "k"]), inner, max_size=3),
                         max_leaves=8),
            max_size=5))))
    def test_wrong_json_shapes_only_raise_protocol_error(self, cls_and_obj):
        """Any JSON object with known keys: a message, or ProtocolError, nothing else."""
        cls, obj = cls_and_obj
        body = json.dumps(obj).encode()
        try:
            msg = m.decode_body(cls.TYPE[0], body)
        except ProtocolError:
            return
        self.assertIsInstance(msg, cls)
        m.encode_body(msg)  # whatever we accept, we can send again


def _generic_udp_packet(body: bytes) -> m.UDPPacket:
    """What the generic decoder makes of a UDPPacket body (ProtocolError as it raises)."""
    try:
        obj = json.loads(body.decode("utf-8", "replace"))
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    return m.struct_from_json(m.UDPPacket, obj, "UDPPacket")


_udp_address = st.builds(m.UDPAddr, st.one_of(st.just(""), st.ip_addresses().map(str)), st.integers(0, 0xFFFF),
                         st.sampled_from(["", "eth0", "lo", "a.b-c_1", "\u00e9", "<&>", '"']))


class DatagramFastPathTests(SynchronousTestCase):
    """UDPPacket's own encoder and decoder agree with the generic ones, byte for byte and value
    for value, on everything the generic ones take; what they do not recognise goes generic."""

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=8000), _udp_address)
    def test_encoding_is_the_generic_encoding(self, payload, address):
        try:
            expected = m.encode_message(m.UDPPacket(c=payload, r=address))
        except m.MessageTooLarge:
            self.assertRaises(m.MessageTooLarge, m.encode_udp_packet, payload, address)
            return
        self.assertEqual(m.encode_udp_packet(payload, address), expected)

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=2000), st.none() | _udp_address, st.none() | _udp_address)
    def test_decoding_frps_and_frpcs_bodies_is_the_generic_decoding(self, payload, local, remote):
        body = m.encode_body(m.UDPPacket(c=payload, l=local, r=remote))
        self.assertEqual(m.decode_body(m.UDPPacket.TYPE[0], bytearray(body)), _generic_udp_packet(body))

    @settings(max_examples=1000, deadline=None)
    @given(st.binary(min_size=1, max_size=300), st.sampled_from([b"127.0.0.1", b"::1", b"", b"1.2.3"]),
           st.integers(0, 99999), st.binary(max_size=8), st.integers(0, 400), st.binary(max_size=3))
    def test_near_misses_decode_as_the_generic_decoder_does(self, payload, ip, port, zone, cut, splice):
        """frp's spelling with bytes changed here and there: the same message, or the same
        refusal, as the generic decoder gives."""
        body = (b'{"c":"' + base64.b64encode(payload) + b'","r":{"IP":"' + ip + b'","Port":' + str(port).encode()
                + b',"Zone":"' + zone + b'"}}')
        position = cut % (len(body) + 1)
        body = body[:position] + splice + body[position + len(splice):]
        try:
            expected = _generic_udp_packet(body)
        except ProtocolError:
            self.assertRaises(ProtocolError, m.decode_body, m.UDPPacket.TYPE[0], bytearray(body))
            return
        self.assertEqual(m.decode_body(m.UDPPacket.TYPE[0], bytearray(body)), expected)
