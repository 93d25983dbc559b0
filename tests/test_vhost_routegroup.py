"""http and tcpmux load-balancing groups (config-reference.md §5.2): the bookkeeping without a
reactor, then our frps with two of our frpcs in one http group.  Against real Go frp:
tests/test_httpgroup_interop.py.
"""

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.errors import ProxyError
from frptw.server.vhost.routegroup import RouteGroups
from frptw.server.vhost.routes import RouteTable
from frptw.wire.messages import NewProxy
from tests.grouptraffic import OurFrpsMixin, httpGroupProxy, httpSpread, labelSite
from tests.support import free_port, proxiesRunning, until


class _Member:
    def __init__(self, name: str) -> None:
        self.name = name


def _request(name: str, key: str = "k", user: str = "") -> NewProxy:
    return NewProxy(proxy_name=name, proxy_type="http", group="g", group_key=key, http_user=user)


class HTTPGroupBookkeepingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.routes: RouteTable = RouteTable()
        self.groups = RouteGroups(self.routes)

    def join(self, member, key: str = "k", route=("web.test", "", ""), user: str = ""):
        return self.groups.join(member, _request(member.name, key, user), route)

    def refused(self, member, **kw) -> str:
        with self.assertRaises(ProxyError) as e:
            self.join(member, **kw)
        return str(e.exception)

    def test_group_is_the_route_target_and_requests_rotate(self):
        a, b = _Member("a"), _Member("b")
        group = self.join(a, user="first")
        self.assertIs(self.join(b), group)
        self.assertIs(self.routes.lookup("web.test", "/x", ""), group)
        self.assertEqual([group.choose().name for _ in range(5)], list("ababa"))
        # The route keeps the first member's settings (frp keeps its route config).
        self.assertEqual(group.request.http_user, "first")

    def test_refusals_in_frps_order(self):
        a = _Member("a")
        self.join(a)
        b = _Member("b")
        self.assertEqual(self.refused(b, route=("web.test", "/api", "")), "group params invalid")
        self.assertEqual(self.refused(b, route=("other.test", "", ""), key="x"), "group params invalid")
        self.assertEqual(self.refused(b, key="x"), "group auth failed")
        self.assertEqual(self.refused(a), "group proxy repeated")

    def test_further_settings_must_match_too(self):
        # tcpmux groups pass the credentials; another pair is 'group params invalid'.
        self.groups.join(_Member("a"), _request("a"), ("mux.test", "", ""), ("u", "p"))
        with self.assertRaises(ProxyError) as e:
            self.groups.join(_Member("b"), _request("b"), ("mux.test", "", ""), ("", ""))
        self.assertEqual(str(e.exception), "group params invalid")
        self.groups.join(_Member("c"), _request("c"), ("mux.test", "", ""), ("u", "p"))

    def test_join_each_is_all_or_nothing(self):
        a = _Member("a")
        with self.assertRaises(ProxyError) as e:
            self.groups.joinEach(a, _request("a"), [("web.test", "/x", ""), ("web.test", "/y", "")])
        self.assertEqual(str(e.exception), "group params invalid")
        self.assertIsNone(self.groups.get("g"))
        self.assertIsNone(self.routes.lookup("web.test", "/x", ""))

    def test_first_member_conflicting_with_a_plain_route(self):
        self.routes.add(["web.test"], [""], "", object())
        self.assertEqual(self.refused(_Member("a")), "router config conflict")
        self.assertIsNone(self.groups.get("g"))

    def test_last_member_leaving_removes_the_route(self):
        a, b = _Member("a"), _Member("b")
        group = self.join(a)
        self.join(b)
        self.groups.leave(a, group)
        self.assertEqual([group.choose().name for _ in range(2)], ["b", "b"])
        self.assertIs(self.routes.lookup("web.test", "/", ""), group)
        self.groups.leave(b, group)
        self.assertIsNone(self.routes.lookup("web.test", "/", ""))
        self.assertIsNone(self.groups.get("g"))


class OurFrpsOurFrpcsTests(OurFrpsMixin, TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.httpPort = free_port()
        await self.startOurFrps(f"vhostHTTPPort = {self.httpPort}")

    async def member(self, name: str, label: bytes, **kw):
        client = self.frpc(httpGroupProxy(name, labelSite(self, reactor, label), **kw))
        await proxiesRunning(client, name)
        return client

    async def test_requests_rotate_then_a_leaving_member_gets_none(self):
        a = await self.member("a", b"A")
        b = await self.member("b", b"B")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 40), {b"A": 20, b"B": 20})
        await b.stopService()
        await until(lambda: "b" not in self.server.proxies(), "b to be closed on frps")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 6), {b"A": 6})
        await a.stopService()
        await until(lambda: not self.server.proxies(), "a to be closed on frps")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 1), {b"404": 1})

    async def test_refusals(self):
        await self.member("a", b"A")
        for name, kw, text in [("b", {"key": "wrong"}, "group auth failed"),
                               ("c", {"extra": 'locations = ["/api"]'}, "group params invalid")]:
            client = self.frpc(httpGroupProxy(name, 1, **kw))
            with self.assertRaises(ProxyError) as e:
                await client.whenProxyRunning(name)
            self.assertIn(text, str(e.exception))
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 3), {b"A": 3})
