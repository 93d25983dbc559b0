"""tcp load-balancing groups with real Go frp 0.65 (config-reference.md §5.2).

Our frps with two Go frpc members, and with one Go and one frptw member; our frpc joining a
group on Go frps next to a Go frpc.  Each time 40 sequential user connections must reach both
members (each at least 25 %), a member that leaves gets no more, and a wrong ``groupKey`` or a
different ``remotePort`` is refused with the same text by both servers (Go frpc logs it as
``[NAME] start error: TEXT``).
"""

from typing import Awaitable, Callable

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.errors import ProxyError
from tests.gofrp import GoFrp
from tests.grouptraffic import OurFrpsMixin, startError, Banner, groupProxy, spread
from tests.interop import GoAndOursMixin
from tests.support import free_port, proxiesRunning, until


#: What Go frps 0.65 answers (and so ours must) to a wrong key, a different port, another group.
REFUSALS = ["group auth failed", "group should have same remote port", "port already used"]


class GroupMixin(GoAndOursMixin):
    timeout = 60

    async def goMember(self, name: str, label: bytes, **kw) -> GoFrp:
        return await self.go(name, groupProxy(name, Banner.listen(self, reactor, label), self.remote, **kw),
                             ready="start proxy success")

    async def ourMember(self, name: str, label: bytes, **kw):
        client = await self.ours(name, groupProxy(name, Banner.listen(self, reactor, label), self.remote, **kw))
        await proxiesRunning(client, name)
        return client

    async def spreadThenLeave(self, leave: Callable[[], Awaitable[object]]) -> None:
        """40 connections reach members A and B (each >= 25 %); after ``leave`` (B goes), only A."""
        counts = await spread(reactor, self.remote, 40)
        self.assertEqual(counts[b"A"] + counts[b"B"], 40, counts)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)
        await leave()
        self.assertEqual(await spread(reactor, self.remote, 10), {b"A": 10})

    async def refusals(self):
        """Go frpcs with a wrong key, a different port, and another group on the group's port:
        frps's texts, as Go frpc logs them."""
        texts = []
        for name, key, remote, group in [("wrongkey", "wrong", self.remote, "web"),
                                         ("otherport", "gk", free_port(), "web"),
                                         ("othergroup", "gk", self.remote, "other")]:
            frpc = await self.go(name, groupProxy(name, 1, remote, key=key, group=group))
            texts.append(await startError(frpc, name))
        return texts


class OurFrpsTests(OurFrpsMixin, GroupMixin, TestCase):
    async def setUp(self) -> None:
        await self.startOurFrps()
        self.remote = free_port()

    async def leaves(self, stop: Callable[[], Awaitable[object]]) -> None:
        await stop()
        await until(lambda: "b.b" not in self.server.proxies(), "b to leave the group")

    async def test_two_go_members(self):
        await self.goMember("a", b"A")
        b = await self.goMember("b", b"B")
        await self.spreadThenLeave(lambda: self.leaves(b.stop))

    async def test_go_and_frptw_members(self):
        await self.goMember("a", b"A")
        b = await self.ourMember("b", b"B")
        await self.spreadThenLeave(lambda: self.leaves(b.stopService))

    async def test_refusal_texts(self):
        await self.goMember("a", b"A")
        self.assertEqual(await self.refusals(), REFUSALS)


class GoFrpsTests(GroupMixin, TestCase):
    async def setUp(self) -> None:
        await self.startFrps()
        self.remote = free_port()

    async def test_frptw_frpc_joins_a_go_frpc_group(self):
        await self.goMember("a", b"A")
        b = await self.ourMember("b", b"B")

        async def leave():
            await b.stopService()
            await self.frps.waitFor("[b.b] proxy closing")

        await self.spreadThenLeave(leave)

    async def test_refusal_texts(self):
        await self.goMember("a", b"A")
        self.assertEqual(await self.refusals(), REFUSALS)

    async def test_frptw_frpc_wrong_key(self):
        await self.goMember("a", b"A")
        client = await self.ours("b", groupProxy("b", 1, self.remote, key="wrong"))
        with self.assertRaises(ProxyError) as e:
            await client.whenProxyRunning("b")
        self.assertIn("group auth failed", str(e.exception))
