"""Scenarios of frp's own end-to-end tests (test/e2e/v1/basic) where frptw differed from the
real Go frp 0.65, run with frptw on one side and the Go binaries on the other.

* ``[Feature: Basic] HTTP``: a backend that answers HTTP/1.0 (Python's ``http.server``, many
  small devices) must reach the user as an HTTP/1.1 response, as Go's frps relays it;
* ``[Feature: Client-Server] IPv6 bind address``: with frps on ``bindAddr = "::"`` a udp proxy's
  port is dual-stack, so an IPv4 user's datagrams must be answered (Go's frpc sends the user's
  address back in Go's spelling, ``127.0.0.1``, which a ``::`` socket must map); the same
  holds for an sudp visitor bound to ``::``;
* ``[Feature: Server Manager] Ports Whitelist``: a udp proxy refused its port is told
  ``acquire port N error: port not allowed`` (frps's udp proxy wraps the port error, its tcp
  proxy does not).
"""

import re
import socket

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.gofrp import GoFrp
from tests.interop import GoAndOursMixin, ourFrps, secretProxy
from tests.support import free_port
from tests.udptraffic import udp_exchange, udpEcho, wait_for_echo


class _HTTP10Backend(protocol.Protocol):
    """Answers the first request head HTTP/1.0 style: no length, the body ends at the close."""

    def __init__(self) -> None:
        self.head = b""

    def dataReceived(self, data: bytes) -> None:
        self.head += data
        if b"\r\n\r\n" in self.head:
            self.transport.write(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello from ")
            self.transport.write(b"HTTP/1.0")
            self.transport.loseConnection()


class HTTP10Backend(TestCase):
    timeout = 60

    async def fetch(self, frpsPort: int, vhostPort: int):
        """Go frpc with an http proxy to an HTTP/1.0 backend behind the frps on ``frpsPort``;
        (status, HTTP version, body) of a GET through the vhost port."""
        backend = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            protocol.Factory.forProtocol(_HTTP10Backend))
        self.addCleanup(backend.stopListening)
        frpc = await GoFrp.start(
            reactor, "frpc",
            f'serverAddr = "127.0.0.1"\nserverPort = {frpsPort}\n[[proxies]]\nname = "web"\ntype = "http"\n'
            f'localPort = {backend.getHost().port}\ncustomDomains = ["old.example.com"]\n')
        self.addCleanup(frpc.stop)
        await frpc.waitFor("start proxy success")
        response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{vhostPort}/".encode(),
                                                Headers({b"Host": [b"old.example.com"]}))
        return response.code, response.version, await readBody(response)

    async def test_our_frps_answers_as_go_frps(self):
        expected = (200, (b"HTTP", 1, 1), b"hello from HTTP/1.0")
        goPort, goVhost = free_port(), free_port()
        go = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {goPort}\n'
                                                f"vhostHTTPPort = {goVhost}\n")
        self.addCleanup(go.stop)
        self.assertEqual(await self.fetch(goPort, goVhost), expected)
        ourVhost = free_port()
        ours = await ourFrps(self, f'bindAddr = "127.0.0.1"\nvhostHTTPPort = {ourVhost}\n')
        self.assertEqual(await self.fetch(ours, ourVhost), expected)


class DualStackDatagrams(GoAndOursMixin, TestCase):
    async def test_udp_proxy_of_our_frps_on_any_address(self):
        """Go frpc -> our frps on ``::``: an IPv4 user of the udp proxy gets its echoes."""
        frps = await ourFrps(self, 'bindAddr = "::"\n')
        remote = free_port(socket.SOCK_DGRAM)
        frpc = await GoFrp.start(
            reactor, "frpc",
            f'serverAddr = "127.0.0.1"\nserverPort = {frps}\n[[proxies]]\nname = "dns"\ntype = "udp"\n'
            f"localPort = {udpEcho(self)}\nremotePort = {remote}\n")
        self.addCleanup(frpc.stop)
        await frpc.waitFor("start proxy success")
        await wait_for_echo(reactor, remote)
        self.assertEqual(await udp_exchange(reactor, remote, 50), (50, 0, 0))

    async def test_sudp_visitor_of_our_frpc_on_any_address(self):
        """Go frps and Go provider, our sudp visitor on ``::``: an IPv4 user gets its echoes."""
        await self.startFrps()
        provider = await self.go("owner", secretProxy("sudp", udpEcho(self)), ready="start proxy success")
        self.assertIn("start proxy success", provider.output)
        bindPort = free_port(socket.SOCK_DGRAM)
        await self.ours("visitor", f'[[visitors]]\nname = "vis"\ntype = "sudp"\nserverName = "sec"\n'
                                   f'serverUser = "owner"\nsecretKey = "s3cret"\nbindAddr = "::"\n'
                                   f"bindPort = {bindPort}\n")
        await wait_for_echo(reactor, bindPort)
        self.assertEqual(await udp_exchange(reactor, bindPort, 50), (50, 0, 0))


class PortRefusals(TestCase):
    timeout = 60

    async def refusal(self, frpsPort: int) -> str:
        """Go frpc's log line for a tcp and a udp proxy on ports outside ``allowPorts``."""
        frpc = await GoFrp.start(
            reactor, "frpc",
            f'serverAddr = "127.0.0.1"\nserverPort = {frpsPort}\n'
            '[[proxies]]\nname = "t"\ntype = "tcp"\nlocalPort = 1\nremotePort = 11001\n'
            '[[proxies]]\nname = "u"\ntype = "udp"\nlocalPort = 1\nremotePort = 11003\n')
        self.addCleanup(frpc.stop)
        await frpc.waitFor("start error", count=2)
        return sorted(re.findall(r"\[[tu]\] start error: .*", frpc.output))

    async def test_our_frps_refuses_as_go_frps(self):
        allow = "allowPorts = [{ start = 10000, end = 11000 }, { single = 11002 }]\n"
        goPort = free_port()
        go = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {goPort}\n{allow}')
        self.addCleanup(go.stop)
        expected = await self.refusal(goPort)
        self.assertEqual(expected, ["[t] start error: port not allowed",
                                    "[u] start error: acquire port 11003 error: port not allowed"])
        self.assertEqual(await self.refusal(await ourFrps(self, allow)), expected)
