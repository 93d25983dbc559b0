"""tcp load-balancing groups with real Go frp 0.65 (config-reference.md §5.2).

Our frps with two Go frpc members, and with one Go and one frptw member; our frpc joining a
group on Go frps next to a Go frpc.  Each time 40 sequential user connections must reach both
members (each at least 25 %), a member that leaves gets no more, and a wrong ``groupKey`` or a
different ``remotePort`` is refused with the same text by both servers (Go frpc logs it as
``[NAME] start error: TEXT``).
"""

from typing import Awaitable, Callable

from twisted.trial.unittest import TestCase

from frptw.errors import ProxyError
from tests.grouptraffic import GroupMixin, OurFrpsMixin, groupProxy
from tests.support import free_port, until

#: What Go frps 0.65 answers (and so ours must) to a wrong key, a different port, another group.
REFUSALS = ["group auth failed", "group should have same remote port", "port already used"]


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
