"""frptw.server.plugin_rpc: the server plugin request bodies and reply semantics, without I/O."""

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.server import plugin_rpc as rpc
from frptw.wire import messages as m

CAROL = rpc.UserInfo("carol", {"team": "red"}, "4b2c121d0cd6c28a")


class RequestTests(SynchronousTestCase):
    def test_new_proxy_body_is_frps_capture(self) -> None:
        """config-reference.md §8.2's capture of frps 0.65, byte for byte."""
        request = m.NewProxy(proxy_name="carol.echo", proxy_type="tcp", metas={"owner": "dave"},
                             annotations={"frp.io/desc": "hello"}, remote_port=16060)
        body = rpc.request_body(rpc.NEW_PROXY, rpc.MessageContent(CAROL, request))
        self.assertEqual(body, b'{"version":"0.1.0","op":"NewProxy","content":{"user":{"user":"carol","metas":'
                               b'{"team":"red"},"run_id":"4b2c121d0cd6c28a"},"proxy_name":"carol.echo",'
                               b'"proxy_type":"tcp","metas":{"owner":"dave"},"annotations":{"frp.io/desc":"hello"},'
                               b'"remote_port":16060}}')

    def test_user_without_metas_is_null_and_all_keys_present(self) -> None:
        content = rpc.MessageContent(rpc.UserInfo(), m.CloseProxy(proxy_name="p"))
        self.assertEqual(content.to_json(), {"user": {"user": "", "metas": None, "run_id": ""}, "proxy_name": "p"})

    def test_login_content_flattens_login_and_adds_client_address(self) -> None:
        login = m.Login(version="0.65.0", os="linux", arch="amd64", privilege_key="k", timestamp=5, pool_count=1)
        self.assertEqual(rpc.LoginContent(login, "127.0.0.1:4000").to_json(),
                         {"version": "0.65.0", "os": "linux", "arch": "amd64", "privilege_key": "k", "timestamp": 5,
                          "client_spec": {}, "pool_count": 1, "client_address": "127.0.0.1:4000"})

    def test_new_user_conn_never_omits(self) -> None:
        self.assertEqual(rpc.UserConnContent(CAROL, "", "tcp", "").to_json(),
                         {"user": CAROL.to_json(), "proxy_name": "", "proxy_type": "tcp", "remote_addr": ""})

    def test_frptw_fields_are_hidden_from_plugins(self) -> None:
        request = m.NewProxy(proxy_name="p", frptw_compressions=["lz4"])
        self.assertNotIn("frptw_compressions", rpc.MessageContent(CAROL, request).to_json())

    def test_target(self) -> None:
        self.assertEqual(rpc.request_target("Ping"), "?op=Ping&version=0.1.0")


class ReplyTests(SynchronousTestCase):
    content = rpc.MessageContent(CAROL, m.NewProxy(proxy_name="p", proxy_type="tcp", remote_port=6000,
                                                   frptw_compressions=["lz4"]))

    def test_reject(self) -> None:
        reply = rpc.parse_reply(200, b'{"reject":true,"reject_reason":"no way"}')
        self.assertEqual((reply.reject, reply.reject_reason), (True, "no way"))
        self.assertIsNone(rpc.apply_reply(self.content, reply))

    def test_unchange_keeps_content(self) -> None:
        reply = rpc.parse_reply(200, b'{"reject":false,"unchange":true,"content":{"proxy_name":"other"}}')
        self.assertIs(rpc.apply_reply(self.content, reply), self.content)

    def test_content_replaces_and_frptw_fields_survive(self) -> None:
        reply = rpc.parse_reply(200, json.dumps({"unchange": False, "content": {
            "user": {"user": "x"}, "proxy_name": "p", "proxy_type": "tcp", "remote_port": 7001}}).encode())
        changed = rpc.apply_reply(self.content, reply)
        self.assertEqual((changed.message.remote_port, changed.message.frptw_compressions, changed.user.user),
                         (7001, ["lz4"], "x"))

    def test_missing_content_wipes_it(self) -> None:
        """Observed on frps 0.65: ``{"reject": false}`` registers a proxy with an empty name."""
        changed = rpc.apply_reply(self.content, rpc.parse_reply(200, b'{"reject":false}'))
        self.assertEqual((changed.message.proxy_name, changed.message.remote_port), ("", 0))

    def test_keys_match_case_insensitively(self) -> None:
        reply = rpc.parse_reply(200, b'{"Reject":true,"Reject_Reason":"r"}')
        self.assertEqual((reply.reject, reply.reject_reason), (True, "r"))

    def test_json_null_is_the_zero_reply(self) -> None:
        self.assertEqual(rpc.parse_reply(200, b"null"), rpc.Reply())

    def test_errors(self) -> None:
        for status, body, text in [
            (500, b'{"reject":false}', "do http request error code: 500"),
            (200, b"not json", "not JSON"),
            (200, b"", "not JSON"),
            (200, b"[]", "not a JSON object"),
            (200, b'{"unchange":"false"}', "'unchange' must be a JSON boolean"),
            (200, b'{"reject":1}', "'reject' must be a JSON boolean"),
            (200, b'{"reject_reason":false}', "'reject_reason' must be a JSON string"),
        ]:
            with self.assertRaises(rpc.ReplyError) as caught:
                rpc.parse_reply(status, body)
            self.assertIn(text, str(caught.exception))

    def test_badly_typed_content_is_an_error(self) -> None:
        for content in ({"remote_port": "7001"}, {"user": {"metas": []}}, 5):
            with self.assertRaises(rpc.ReplyError):
                rpc.apply_reply(self.content, rpc.Reply(content=content))

    def test_user_conn_content_decodes_strings_only(self) -> None:
        content = rpc.UserConnContent(CAROL, "p", "tcp", "1.2.3.4:5")
        with self.assertRaises(rpc.ReplyError):
            rpc.apply_reply(content, rpc.Reply(content={"remote_addr": 5}))
        self.assertEqual(rpc.apply_reply(content, rpc.Reply(content={"proxy_name": "q"})).proxy_name, "q")

    @given(st.binary(max_size=200), st.integers(100, 599))
    def test_any_answer_is_a_reply_or_a_reply_error(self, body: bytes, status: int) -> None:
        try:
            reply = rpc.parse_reply(status, body)
            rpc.apply_reply(self.content, reply)
        except rpc.ReplyError:
            pass

    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                     max_size=4), max_leaves=12))
    def test_any_json_content_decodes_or_is_a_reply_error(self, document) -> None:
        for content in (self.content, rpc.LoginContent(m.Login()), rpc.UserConnContent(CAROL, "p", "tcp", "")):
            try:
                rpc.apply_reply(content, rpc.Reply(content=document))
            except rpc.ReplyError:
                pass
