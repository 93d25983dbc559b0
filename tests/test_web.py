"""frptw.web: frp's management-server behaviour (auth, delays, Go's 404/405, bodies, TLS)."""

import gzip
import os

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import CannotListenError, ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from frptw.config import TLSConfig, WebServerConfig
from frptw.web import (
    AUTH_FAIL_DELAY,
    ApiResource,
    BasicAuthGate,
    BoundedSite,
    Healthz,
    RedirectToStatic,
    WebServer,
    staticAssets,
)
from frptw.web._site import REQUEST_TIMEOUT
from tests.pki import TestCA
from tests.support import LogCapture, free_port, tempDir, until
from tests.webclient import Connection, basic, exchange, fetch, rawRequest

PAGE = b"<html>frptw</html>" * 20


class _Echo(ApiResource):
    """GET answers "hello"; PUT echoes the body."""

    isLeaf = True

    def render_GET(self, request) -> bytes:
        return b"hello"

    def render_PUT(self, request) -> bytes:
        return request.content.read()


def _tree(assets=None) -> Resource:
    api = ApiResource()
    api.putChild(b"echo", _Echo())
    root = ApiResource()
    root.putChild(b"api", api)
    root.putChild(b"", RedirectToStatic())
    root.putChild(b"static", staticAssets(assets))
    return root


def _site(clock, user="admin", password="s3cret", assets=None, maxBody=1000) -> BoundedSite:
    gate = BasicAuthGate(_tree(assets), user, password, clock, public={b"healthz": Healthz()})
    return BoundedSite(gate, maxBody=maxBody, reactor=clock)


class AuthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.site = _site(self.clock)

    def test_rightCredentials(self) -> None:
        response = exchange(self.site, "GET", "/api/echo", [basic("admin", "s3cret")])
        self.assertEqual((response.status, response.body), (200, b"hello"))

    def test_wrongPasswordWaitsThenRefuses(self) -> None:
        """A wrong password gets its 401 only after frp's 200 ms, with frp's header and text."""
        connection = Connection(self.site)
        connection.send(rawRequest("GET", "/api/echo", [basic("admin", "nope")]))
        self.assertIsNone(connection.response())
        self.clock.advance(AUTH_FAIL_DELAY - 0.01)
        self.assertIsNone(connection.response())
        self.clock.advance(0.01)
        response = connection.response()
        self.assertEqual(response.status, 401)
        self.assertEqual(response.headers["www-authenticate"], 'Basic realm="Restricted"')
        self.assertEqual(response.body, b"Unauthorized\n")
        self.assertEqual(response.headers["content-type"], "text/plain; charset=utf-8")

    def test_delayBlocksOnlyThatCaller(self) -> None:
        """While one caller waits for its 401, another is served at once."""
        refused = Connection(self.site)
        refused.send(rawRequest("GET", "/api/echo", [basic("admin", "wrong")]))
        other = exchange(self.site, "GET", "/api/echo", [basic("admin", "s3cret")])
        self.assertEqual(other.status, 200)
        self.assertIsNone(refused.response())
        self.clock.advance(AUTH_FAIL_DELAY)
        self.assertEqual(refused.response().status, 401)

    def test_callerHangsUpDuringDelay(self) -> None:
        """The delayed 401 is dropped, with its timer, when the caller goes away first."""
        connection = Connection(self.site)
        connection.send(rawRequest("GET", "/api/echo", [basic("x", "y")]))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the refusal (no idle timeout mid-request)
        connection.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_missingCredentials(self) -> None:
        connection = Connection(self.site)
        connection.send(rawRequest("GET", "/api/echo"))
        self.clock.advance(AUTH_FAIL_DELAY)
        self.assertEqual(connection.response().status, 401)

    def test_wrongUserRightPassword(self) -> None:
        connection = Connection(self.site)
        connection.send(rawRequest("GET", "/api/echo", [basic("root", "s3cret")]))
        self.clock.advance(AUTH_FAIL_DELAY)
        self.assertEqual(connection.response().status, 401)

    def test_malformedAuthorization(self) -> None:
        connection = Connection(self.site)
        connection.send(rawRequest("GET", "/api/echo", [(b"authorization", b"Basic !!!notbase64")]))
        self.clock.advance(AUTH_FAIL_DELAY)
        self.assertEqual(connection.response().status, 401)

    def test_healthzNeedsNoCredentials(self) -> None:
        for method in ("GET", "POST"):
            response = exchange(self.site, method, "/healthz")
            self.assertEqual((response.status, response.body), (200, b""))

    def test_unknownPathIs404WithoutCredentials(self) -> None:
        """gorilla/mux runs the auth middleware on matched routes only."""
        response = exchange(self.site, "GET", "/api/nothing")
        self.assertEqual((response.status, response.body), (404, b"404 page not found\n"))
        self.assertEqual(exchange(self.site, "GET", "/nothing/deeper").status, 404)

    def test_wrongMethodIsEmpty405WithoutCredentials(self) -> None:
        for method in ("POST", "HEAD", "DELETE"):
            response = exchange(self.site, method, "/api/echo")
            self.assertEqual((response.status, response.body), (405, b""), method)

    def test_rootRedirectsAfterAuth(self) -> None:
        response = exchange(self.site, "GET", "/", [basic("admin", "s3cret")])
        self.assertEqual((response.status, response.headers["location"]), (301, "/static/"))

    def test_noCredentialsConfigured(self) -> None:
        """Empty user and password: frp asks nobody."""
        site = _site(self.clock, user="", password="")
        self.assertEqual(exchange(site, "GET", "/api/echo").status, 200)
        self.assertEqual(exchange(site, "GET", "/api/echo", [basic("any", "thing")]).status, 200)

    def test_userWithEmptyPassword(self) -> None:
        site = _site(self.clock, user="admin", password="")
        self.assertEqual(exchange(site, "GET", "/api/echo", [basic("admin", "")]).status, 200)
        connection = Connection(site)
        connection.send(rawRequest("GET", "/api/echo"))
        self.clock.advance(AUTH_FAIL_DELAY)
        self.assertEqual(connection.response().status, 401)


class BodyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.site = _site(Clock(), user="", password="", maxBody=1000)

    def test_bodyWithinLimit(self) -> None:
        response = exchange(self.site, "PUT", "/api/echo", body=b"x" * 1000)
        self.assertEqual((response.status, response.body), (200, b"x" * 1000))

    def test_declaredTooLarge(self) -> None:
        """A Content-Length over the limit is refused with 413 and never reaches the resource."""
        response = exchange(self.site, "PUT", "/api/echo", body=b"x" * 1001)
        self.assertEqual(response.status, 413)
        self.assertIn(b"too large", response.body)

    def test_chunkedTooLarge(self) -> None:
        connection = Connection(self.site)
        head = b"PUT /api/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
        connection.send(head + chunk + chunk + b"0\r\n\r\n")
        self.assertEqual(connection.response("PUT").status, 413)


class StaticTests(TestCase):
    """``assetsDir`` over loopback (static files stream through a producer on the reactor)."""

    async def setUp(self) -> None:
        self.assets = tempDir(self)
        with open(os.path.join(self.assets, "index.html"), "wb") as f:
            f.write(PAGE)
        os.mkdir(os.path.join(self.assets, "sub"))
        config = WebServerConfig(addr="127.0.0.1", port=free_port())
        server = WebServer(config, BasicAuthGate(_tree(self.assets), "", "", reactor), reactor)
        self.addCleanup(server.stop)
        await server.listen()
        self.base = f"http://127.0.0.1:{config.port}"

    async def test_file(self) -> None:
        response = await fetch(reactor, self.base + "/static/index.html")
        self.assertEqual((response.status, response.body), (200, PAGE))
        self.assertEqual(response.headers["content-type"], "text/html")

    async def test_gzipWhenAccepted(self) -> None:
        response = await fetch(reactor, self.base + "/static/index.html", headers=[(b"accept-encoding", b"gzip")])
        self.assertEqual(response.headers["content-encoding"], "gzip")
        self.assertEqual(gzip.decompress(response.body), PAGE)

    async def test_missingFileHeadAndListing(self) -> None:
        self.assertEqual((await fetch(reactor, self.base + "/static/nope.js")).body, b"404 page not found\n")
        self.assertEqual((await fetch(reactor, self.base + "/static/index.html", "HEAD")).status, 405)
        self.assertEqual((await fetch(reactor, self.base + "/static/sub/")).status, 404)
        self.assertEqual((await fetch(reactor, self.base + "/static/%2e%2e/%2e%2e/etc/passwd")).status, 404)

    def test_noAssetsDirectory(self) -> None:
        site = _site(Clock(), user="", password="")
        self.assertEqual(exchange(site, "GET", "/static/index.html").status, 404)


class HeadDeadlineTests(SynchronousTestCase):
    """A request head must be complete within REQUEST_TIMEOUT however it trickles (frp's
    ReadHeaderTimeout); Twisted's idle timeout alone restarts with every byte."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.site = _site(self.clock, user="", password="")
        self.channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.channel.makeConnection(self.transport)

    def test_trickled_head_is_cut(self) -> None:
        logs = LogCapture(self)
        self.channel.dataReceived(b"GET /api/echo HTTP/1.1\r\n")
        for _ in range(5):
            self.clock.advance(REQUEST_TIMEOUT / 6)  # each byte well within the idle timeout
            self.channel.dataReceived(b"X")
        self.clock.advance(REQUEST_TIMEOUT / 6 - 0.1)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(logs.texts(("frptw.web",)),
                         ["closing connection from 127.0.0.1:40000: no complete request head in 60 s"])
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_each_request_of_a_kept_connection_gets_its_own_time(self) -> None:
        request = b"GET /api/echo HTTP/1.1\r\nhost: x\r\n\r\n"
        for _ in range(3):
            self.clock.advance(REQUEST_TIMEOUT - 1)
            self.channel.dataReceived(request)
        self.assertFalse(self.transport.disconnected)
        self.assertEqual(self.transport.value().count(b"200 OK"), 3)


class WebServerTests(TestCase):
    """Real sockets on loopback: plain HTTP, HTTPS with webServer.tls, stopping."""

    def _server(self, **kwargs) -> WebServer:
        config = WebServerConfig(addr="127.0.0.1", port=free_port(), **kwargs)
        server = WebServer(config, BasicAuthGate(_tree(), "u", "p", reactor), reactor, what="admin server")
        self.addCleanup(server.stop)
        return server

    async def test_http(self) -> None:
        server = self._server()
        await server.listen()
        url = f"http://127.0.0.1:{server.config.port}/api/echo"
        response = await fetch(reactor, url, headers=[basic("u", "p")])
        self.assertEqual((response.status, response.body), (200, b"hello"))

    async def test_https(self) -> None:
        ca = TestCA(tempDir(self))
        cert, key = ca.issueFiles("admin", ipAddresses=["127.0.0.1"])
        server = self._server(tls=TLSConfig(cert_file=cert, key_file=key))
        await server.listen()
        with open(ca.ca, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        url = f"https://127.0.0.1:{server.config.port}/api/echo"
        response = await fetch(reactor, url, headers=[basic("u", "p")], trustRoot=trust)
        self.assertEqual((response.status, response.body), (200, b"hello"))

    async def test_portTaken(self) -> None:
        first = self._server()
        await first.listen()
        second = WebServer(first.config, _tree(), reactor)
        with self.assertRaises(CannotListenError):
            await second.listen()

    async def test_trickled_head_is_closed(self) -> None:
        """The head deadline on a real socket (shortened to 0.5 s): a byte every 0.1 s does not
        keep the connection."""
        server = self._server()
        server.site.headTimeout = 0.5
        await server.listen()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.config.port)
        idle = await endpoint.connect(Factory.forProtocol(_Idle))
        started = reactor.seconds()
        idle.transport.write(b"GET /healthz HTTP/1.1\r\n")
        trickle = LoopingCall(idle.transport.write, b"X")
        trickle.start(0.1)
        self.addCleanup(lambda: trickle.running and trickle.stop())
        idle.lost.addTimeout(10, reactor)
        await idle.lost
        self.assertGreaterEqual(reactor.seconds() - started, 0.5)

    async def test_stopClosesConnections(self) -> None:
        """Stopping closes the listener and every open connection, as Go's Server.Close."""
        server = self._server()
        await server.listen()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.config.port)
        idle = await endpoint.connect(Factory.forProtocol(_Idle))
        await until(lambda: len(server._tracking.protocols) == 1, "the server to see the connection")
        await server.stop()
        await idle.lost
        with self.assertRaises(ConnectionRefusedError):
            await endpoint.connect(Factory.forProtocol(_Idle))


class _Idle(Protocol):
    def __init__(self) -> None:
        self.lost = Deferred()

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)
