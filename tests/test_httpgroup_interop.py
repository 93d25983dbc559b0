"""http load-balancing groups with real Go frp 0.65 (config-reference.md §5.2).

On our frps and on Go frps alike: a Go frpc and a frptw frpc in one group share 40 requests
(each at least 25 %), and take turns even on one keep-alive connection; a member that leaves
gets no more; the last one leaving leaves a 404;
a wrong key, another location and a second location of one member are refused with the same
texts by both servers (Go frpc logs ``[NAME] start error: TEXT``); the route keeps the first
member's Basic credentials for every member.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.grouptraffic import (
    GoFrpsClosedMixin,
    OurFrpsMixin,
    answer,
    httpGroupProxy,
    httpSpread,
    labelSite,
    startError,
)
from tests.interop import GoAndOursMixin
from tests.support import free_port, proxiesRunning

#: What Go frps 0.65 answers to a wrong key, another location, and a member with two locations.
REFUSALS = ["group auth failed", "group params invalid", "group params invalid"]


class HTTPGroupMixin(GoAndOursMixin):
    timeout = 60

    async def goMember(self, name: str, label: bytes, **kw):
        return await self.go(name, httpGroupProxy(name, labelSite(self, reactor, label), **kw),
                             ready="start proxy success")

    async def ourMember(self, name: str, label: bytes, **kw):
        client = await self.ours(name, httpGroupProxy(name, labelSite(self, reactor, label), **kw))
        await proxiesRunning(client, name)
        return client

    async def test_go_and_frptw_members(self):
        go = await self.goMember("a", b"A")
        ours = await self.ourMember("b", b"B")
        counts = await httpSpread(reactor, self.httpPort, "web.test", 40)
        self.assertEqual(counts[b"A"] + counts[b"B"], 40, counts)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)
        await ours.stopService()
        await self.closed("b")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 6), {b"A": 6})
        await go.stop()
        await self.closed("a")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 1), {b"404": 1})

    async def test_rotation_per_request_on_one_keep_alive_connection(self):
        await self.goMember("a", b"A")
        await self.ourMember("b", b"B")
        request = b"GET / HTTP/1.1\r\nHost: web.test\r\n"
        data = await answer(reactor, self.httpPort, (request + b"\r\n") * 3 + request + b"Connection: close\r\n\r\n")
        bodies = [response[-1:] for response in data.split(b"HTTP/1.1 200 OK")[1:]]
        self.assertEqual(sorted(bodies), [b"A", b"A", b"B", b"B"], data)

    async def test_route_keeps_the_first_members_credentials(self):
        await self.goMember("a", b"A", extra='httpUser = "u"\nhttpPassword = "p"')
        await self.ourMember("b", b"B")
        self.assertEqual(await httpSpread(reactor, self.httpPort, "web.test", 4), {b"401": 4})

    async def test_refusal_texts(self):
        await self.goMember("a", b"A")
        texts = []
        for name, kw in [("wrongkey", {"key": "wrong"}), ("otherloc", {"extra": 'locations = ["/api"]'}),
                         ("twolocs", {"group": "solo", "extra": 'locations = ["/x", "/y"]'})]:
            frpc = await self.go(name, httpGroupProxy(name, 1, **kw))
            texts.append(await startError(frpc, name))
        self.assertEqual(texts, REFUSALS)


class OurFrpsTests(OurFrpsMixin, HTTPGroupMixin, TestCase):
    async def setUp(self) -> None:
        self.httpPort = free_port()
        await self.startOurFrps(f"vhostHTTPPort = {self.httpPort}")


class GoFrpsTests(GoFrpsClosedMixin, HTTPGroupMixin, TestCase):
    async def setUp(self) -> None:
        self.httpPort = free_port()
        await self.startFrps(f"vhostHTTPPort = {self.httpPort}")
