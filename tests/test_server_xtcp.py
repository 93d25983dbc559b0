"""Our frps as the xtcp rendezvous, driven by raw clients: the owner is woken on a work
connection (StartWorkConn + NatHoleSid), both peers get their NatHoleResp, and forged or stray
NatHole messages are refused with frp's texts or ignored, without harming the sessions."""

from twisted.trial.unittest import TestCase

from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from tests.rawfrpc import RawClientMixin
from tests.support import LogCapture, until

MAPPED_V = ["198.51.100.130:5000", "198.51.100.130:5000"]
MAPPED_O = ["198.51.100.2:6000", "198.51.100.2:6000"]


async def nextSkippingWorkRequests(conn, kind):
    """The next ``kind`` message on a control connection (frps also asks for work connections)."""
    while True:
        message = await conn.next()
        if not isinstance(message, m.ReqWorkConn):
            assert isinstance(message, kind), message
            return message


class RendezvousTests(RawClientMixin, TestCase):
    timeout = 20

    async def test_pairing_and_bad_input(self):
        log = LogCapture(self)
        await self.startServer()
        owner, resp = await self.login(user="u")
        self.assertEqual((await self.newProxy(owner, "u.p", proxy_type="xtcp", sk="sk")).error, "")
        work = await self.workConn(resp.run_id)
        visitor, _ = await self.login(user="u")

        visitor.send(m.NatHoleVisitor(transaction_id="0", proxy_name="u.none", pre_check=True))
        self.assertEqual((await visitor.next(m.NatHoleResp)).error, "xtcp server for [u.none] doesn't exist")
        visitor.send(m.NatHoleVisitor(transaction_id="1", proxy_name="u.p", pre_check=True))
        self.assertEqual(await visitor.next(m.NatHoleResp), m.NatHoleResp(transaction_id="1"))
        visitor.send(m.NatHoleVisitor(transaction_id="2", proxy_name="u.p", sign_key="0" * 32, timestamp=5,
                                      mapped_addrs=MAPPED_V))
        self.assertEqual((await visitor.next(m.NatHoleResp)).error, "xtcp connection of [u.p] auth failed")

        visitor.send(m.NatHoleVisitor(transaction_id="3", proxy_name="u.p", protocol="quic", timestamp=7,
                                      sign_key=privilege_key("sk", 7), mapped_addrs=MAPPED_V))
        self.assertEqual(await work.next(m.StartWorkConn), m.StartWorkConn(proxy_name="u.p"))
        await until(lambda: len(work.raw or b"") >= 9, "NatHoleSid after StartWorkConn")
        reader = m.MessageReader()
        reader.feed(work.raw)
        sid = reader.next_message().sid
        await work.closed  # frps closes the work connection after the sid

        owner.send(m.NatHoleClient(transaction_id="4", proxy_name="u.p", sid="1795641218deadbeefdeadbeef",
                                   mapped_addrs=MAPPED_O))  # forged sid
        visitor.send(m.NatHoleClient(transaction_id="5", proxy_name="u.p", sid=sid, mapped_addrs=MAPPED_O))  # not owner
        owner.send(m.NatHoleReport(sid="nonsense", success=True))
        owner.send(m.NatHoleClient(transaction_id="6", proxy_name="u.p", sid=sid, mapped_addrs=MAPPED_O))
        answer = await visitor.next(m.NatHoleResp)
        self.assertEqual((answer.transaction_id, answer.sid, answer.candidate_addrs, answer.detect_behavior.role,
                          answer.detect_behavior.ttl), ("3", sid, ["198.51.100.2:6000"], "receiver", 7))
        answer = await nextSkippingWorkRequests(owner, m.NatHoleResp)  # the sender's, 1 s later
        self.assertEqual((answer.transaction_id, answer.detect_behavior.role), ("6", "sender"))
        owner.send(m.NatHoleReport(sid=sid, success=True))
        await log.waitFor(f"sid [{sid}] report make hole success: true, mode 0, index 0")
        refusals = [line for line in log.reported(0) if "NatHoleClient" in line or "visitorMsg" in line]
        self.assertEqual(len(refusals), 3, refusals)  # auth failed, forged sid, not the owner
        owner.send(m.Ping())
        visitor.send(m.Ping())
        await nextSkippingWorkRequests(owner, m.Pong)
        await visitor.next(m.Pong)
