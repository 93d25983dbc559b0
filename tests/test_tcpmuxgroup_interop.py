"""tcpmux (httpconnect) load-balancing groups with real Go frp 0.65 (config-reference.md §5.2).

On our frps and on Go frps alike: a Go frpc and a frptw frpc in one group share 40 CONNECT
tunnels (each at least 25 %); a member that leaves gets no more; the last one leaving leaves
no route; a wrong key, another ``routeByHTTPUser`` and a second domain of one member are
refused with the same texts by both servers, and so are other credentials.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.grouptraffic import Banner, GoFrpsClosedMixin, OurFrpsMixin, connectSpread, startError, tcpmuxGroupProxy
from tests.interop import GoAndOursMixin
from tests.support import free_port, proxiesRunning

#: What Go frps 0.65 answers to a wrong key, another routeByHTTPUser, a member with two domains,
#: and other credentials (unlike http groups, tcpmux groups compare them).
REFUSALS = ["group auth failed", "group params invalid", "group params invalid", "group params invalid"]


class TCPMuxGroupMixin(GoAndOursMixin):
    timeout = 60

    async def test_go_and_frptw_members(self):
        go = await self.go("a", tcpmuxGroupProxy("a", Banner.listen(self, reactor, b"A")), ready="start proxy success")
        ours = await self.ours("b", tcpmuxGroupProxy("b", Banner.listen(self, reactor, b"B")))
        await proxiesRunning(ours, "b")
        counts = await connectSpread(reactor, self.muxPort, "web.test", 40)
        self.assertEqual(counts[b"A"] + counts[b"B"], 40, counts)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)
        await ours.stopService()
        await self.closed("b")
        self.assertEqual(await connectSpread(reactor, self.muxPort, "web.test", 6), {b"A": 6})
        await go.stop()
        await self.closed("a")
        self.assertEqual(await connectSpread(reactor, self.muxPort, "web.test", 1), {b"404": 1})

    async def test_refusal_texts(self):
        await self.go("a", tcpmuxGroupProxy("a", 1), ready="start proxy success")
        texts = []
        for name, kw in [("wrongkey", {"key": "wrong"}), ("otheruser", {"extra": 'routeByHTTPUser = "u"'}),
                         ("twodomains", {"group": "solo", "domain": "solo.test", "extra": 'subdomain = "two"'}),
                         ("othercreds", {"extra": 'httpUser = "u"\nhttpPassword = "p"'})]:
            texts.append(await startError(await self.go(name, tcpmuxGroupProxy(name, 1, **kw)), name))
        self.assertEqual(texts, REFUSALS)


class OurFrpsTests(OurFrpsMixin, TCPMuxGroupMixin, TestCase):
    async def setUp(self) -> None:
        self.muxPort = free_port()
        await self.startOurFrps(f'tcpmuxHTTPConnectPort = {self.muxPort}\nsubDomainHost = "sub.test"')


class GoFrpsTests(GoFrpsClosedMixin, TCPMuxGroupMixin, TestCase):
    async def setUp(self) -> None:
        self.muxPort = free_port()
        await self.startFrps(f'tcpmuxHTTPConnectPort = {self.muxPort}\nsubDomainHost = "sub.test"')
