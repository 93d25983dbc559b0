"""tcp load-balancing groups on frptw's frps (config-reference.md §5.2).

The group bookkeeping (who joins, in which turn connections go, when the port is given back)
is tested without a reactor; then our frps with two of our frpcs in one group, on loopback.
The same scenarios against real Go frp are in tests/test_tcpgroup_interop.py.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.errors import ProxyError
from frptw.server.ports import PORT_ALREADY_USED, PortAllocator
from frptw.server.tcpgroup import GROUP_AUTH_FAILED, GROUP_DIFFERENT_PORT, TCPGroups
from tests.grouptraffic import Banner, OurFrpsMixin, answer, groupProxy, spread
from tests.support import free_port, proxiesRunning, until


class _Member:
    def __init__(self, name: str) -> None:
        self.name = name


class _Listener:
    def __init__(self, port: int) -> None:
        self.port = port
        self.stopped = False

    def stopListening(self) -> Deferred:
        self.stopped = True
        return succeed(None)


class GroupBookkeepingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ports = PortAllocator([(20000, 20010)], Clock())
        self.groups = TCPGroups(self.ports)
        self.bound = []

    def bind(self, port, group):
        self.bound.append(port)
        return _Listener(port)

    def join(self, name: str, key: str = "k", port: int = 20001, group: str = "g"):
        return self.groups.join(_Member(name), group, key, port, self.bind)

    def test_first_member_binds_the_port_under_the_group_name(self):
        group = self.join("a")
        self.assertEqual((group.port, self.bound), (20001, [20001]))
        self.assertEqual(self.ports.used, {20001: "g"})
        self.assertIs(self.join("b"), group)
        self.assertEqual(self.bound, [20001])  # the second member shares the listener
        self.assertEqual([m.name for m in group.members], ["a", "b"])

    def test_round_robin(self):
        group = self.join("a")
        self.join("b")
        self.join("c")
        self.assertEqual([group.nextMember().name for _ in range(7)], list("abcabca"))

    def test_wrong_key_and_port_texts_port_checked_first(self):
        self.join("a")
        for key, port, text in [("x", 20001, GROUP_AUTH_FAILED), ("k", 20002, GROUP_DIFFERENT_PORT),
                                ("x", 20002, GROUP_DIFFERENT_PORT), ("k", 0, GROUP_DIFFERENT_PORT)]:
            with self.assertRaises(ProxyError) as e:
                self.join("b", key=key, port=port)
            self.assertEqual(str(e.exception), text)
        self.assertEqual((GROUP_AUTH_FAILED, GROUP_DIFFERENT_PORT),
                         ("group auth failed", "group should have same remote port"))

    def test_any_port_group_members_all_ask_for_zero(self):
        group = self.join("a", port=0)
        self.assertTrue(20000 <= group.port <= 20010)
        self.assertIs(self.join("b", port=0), group)
        with self.assertRaises(ProxyError):
            self.join("c", port=group.port)

    def test_port_errors_of_the_first_member_are_the_allocators(self):
        self.ports.acquire("other", 20001, lambda port: object())
        with self.assertRaises(ProxyError) as e:
            self.join("a")
        self.assertEqual(str(e.exception), PORT_ALREADY_USED)
        self.assertIsNone(self.groups.get("g"))

    def test_leaving_member_gets_no_more_turns(self):
        group = self.join("a")
        b = _Member("b")
        self.groups.join(b, "g", "k", 20001, self.bind)
        self.join("c")
        self.assertEqual(group.nextMember().name, "a")
        self.assertEqual(group.nextMember().name, "b")
        self.successResultOf(self.groups.leave(b, group))
        self.assertEqual([group.nextMember().name for _ in range(4)], list("caca"))
        self.assertFalse(group.listener.stopped)

    def test_last_member_leaving_closes_and_releases_the_port(self):
        a = _Member("a")
        group = self.groups.join(a, "g", "k", 20001, self.bind)
        listener = group.listener
        self.successResultOf(self.groups.leave(a, group))
        self.assertTrue(listener.stopped)
        self.assertEqual(self.ports.used, {})
        self.assertIsNone(self.groups.get("g"))
        # A new group of that name starts afresh, with its own key.
        self.assertEqual(self.join("b", key="other").key, "other")
        self.assertEqual(self.bound, [20001, 20001])

    def test_groups_are_independent(self):
        self.join("a", group="g1")
        with self.assertRaises(ProxyError) as e:
            self.join("b", group="g2")
        self.assertEqual(str(e.exception), PORT_ALREADY_USED)
        self.assertEqual(self.join("c", group="g2", port=20002).port, 20002)


class OurFrpsOurFrpcsTests(OurFrpsMixin, TestCase):
    timeout = 60

    async def setUp(self) -> None:
        await self.startOurFrps()
        self.remote = free_port()

    async def member(self, name: str, label: bytes, **kw):
        client = self.frpc(groupProxy(name, Banner.listen(self, reactor, label), self.remote, **kw))
        await proxiesRunning(client, name)
        return client

    async def test_two_members_share_the_port_and_the_connections(self):
        await self.member("a", b"A")
        b = await self.member("b", b"B")
        proxies = self.server.proxies()
        self.assertEqual((proxies["a"].remote_addr, proxies["b"].remote_addr), (f":{self.remote}",) * 2)
        # Sequential connections strictly alternate, as on Go frps (frp-0.65-observed.md).
        self.assertEqual(await spread(reactor, self.remote, 40), {b"A": 20, b"B": 20})

        # b leaves: everything goes to a.
        await b.stopService()
        await until(lambda: "b" not in self.server.proxies(), "b to be closed on frps")
        self.assertEqual(await spread(reactor, self.remote, 10), {b"A": 10})

    async def test_wrong_key_and_different_port_refused_with_frps_texts(self):
        await self.member("a", b"A")
        client = self.frpc(groupProxy("b", 1, self.remote, key="wrong"))
        with self.assertRaises(ProxyError) as e:
            await client.whenProxyRunning("b")
        self.assertIn("group auth failed", str(e.exception))
        client = self.frpc(groupProxy("c", 1, free_port()))
        with self.assertRaises(ProxyError) as e:
            await client.whenProxyRunning("c")
        self.assertIn("group should have same remote port", str(e.exception))
        self.assertEqual(await spread(reactor, self.remote, 4), {b"A": 4})

    async def test_last_member_leaving_releases_the_port(self):
        a = await self.member("a", b"A")
        self.assertEqual(await answer(reactor, self.remote), b"A")
        await a.stopService()
        await until(lambda: not self.server.proxies(), "a to be closed on frps")
        # The port is free again: a proxy outside any group may take it.
        other = self.frpc(
            f'[[proxies]]\nname = "solo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\n'
            f"localPort = {Banner.listen(self, reactor, b'S')}\nremotePort = {self.remote}\n"
        )
        await proxiesRunning(other, "solo")
        self.assertEqual(await answer(reactor, self.remote), b"S")
