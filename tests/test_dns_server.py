"""frpc's ``dnsServer`` (frptw.tap.dns): names through that DNS server after the hosts file, as
Go frpc 0.65 does; a real twisted.names server on loopback plays the DNS server."""

import os

from twisted.internet import reactor
from twisted.internet.defer import fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.names import common, dns, error, server
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw import tap as tapModule
from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.server import FrpServerService
from frptw.tap import ClientOptions
from frptw.tap import dns as dnsModule
from frptw.tap.dns import installDNSServer, resolverFor
from frptw.wire.hostport import dns_server_address
from tests.badinput import TOKEN, serverConfig
from tests.support import tempDir

NAME = b"frps.test"


class OneName(common.ResolverBase):
    """A DNS zone of one A record, counting the queries it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = []

    def _lookup(self, name, cls, type, timeout):
        self.queries.append(name)
        if name != NAME:
            return fail(error.DomainError(name))
        answers = []
        if type in (dns.A, dns.ALL_RECORDS):
            answers.append(dns.RRHeader(NAME, dns.A, dns.IN, 60, dns.Record_A("127.0.0.1")))
        return succeed((answers, [], []))


class AddressTests(SynchronousTestCase):
    def test_go_rules(self) -> None:
        self.assertEqual(dns_server_address("8.8.8.8"), ("8.8.8.8", 53))
        self.assertEqual(dns_server_address("1.2.3.4:5353"), ("1.2.3.4", 5353))
        self.assertEqual(dns_server_address("::1"), ("::1", 53))
        self.assertEqual(dns_server_address("[::1]:5353"), ("::1", 5353))
        for unusable in ("dns.example", "dns.example:53", "1.2.3.4:0", "1.2.3.4:70000", ""):
            self.assertIsNone(dns_server_address(unusable), unusable)

    def test_a_host_name_loads_with_a_warning(self) -> None:
        config = parse_client_config('dnsServer = "dns.example"\n', "toml", "frpc.toml", env={})
        self.assertEqual(config.dns_server, "dns.example")
        self.assertTrue(any(w.startswith("frpc.toml dnsServer: not an IP address") for w in config.warnings),
                        config.warnings)
        self.assertEqual(parse_client_config('dnsServer = "8.8.8.8"\n', "toml", env={}).warnings, [])

    def test_the_tap_installs_it_before_frpc_starts(self) -> None:
        path = os.path.join(tempDir(self), "frpc.toml")
        with open(path, "w") as f:
            f.write(f'serverAddr = "frps.test"\nserverPort = 7000\nauth.token = "{TOKEN}"\ndnsServer = "127.0.0.1:5353"\n')
        options = ClientOptions()
        options.parseOptions(["--config", path])
        installed = []
        self.patch(dnsModule, "installDNSServer", lambda r, text: installed.append((r, text)))
        self.patch(tapModule, "set_level", lambda level: None)
        clock = MemoryReactorClock()
        tapModule.makeService(options, clock)
        self.assertEqual(installed, [(clock, "127.0.0.1:5353")])


class ResolutionTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.zone = OneName()
        factory = server.DNSServerFactory(clients=[self.zone])
        port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.address = ("127.0.0.1", port.getHost().port)
        self.hosts = os.path.join(tempDir(self), "hosts")
        with open(self.hosts, "w") as f:
            f.write("127.0.0.9 fromhosts.test\n")

    async def test_the_server_answers_and_the_hosts_file_comes_first(self) -> None:
        resolver = resolverFor(self.address, reactor, self.hosts.encode())
        self.assertEqual(await resolver.getHostByName("frps.test"), "127.0.0.1")
        self.assertEqual(await resolver.getHostByName("fromhosts.test"), "127.0.0.9")
        with self.assertRaises(error.DNSNameError):
            await resolver.getHostByName("elsewhere.test")
        self.assertNotIn(b"fromhosts.test", self.zone.queries)
        self.assertIn(NAME, self.zone.queries)

    async def test_frpc_reaches_frps_by_a_name_only_that_server_knows(self) -> None:
        frps = FrpServerService(serverConfig(), reactor=reactor)
        frps.startService()
        self.addCleanup(frps.stopService)
        bindPort = (await frps.whenListening()).getHost().port
        previous = (reactor.resolver, reactor.nameResolver)
        self.addCleanup(lambda: (reactor.installResolver(previous[0]), reactor.installNameResolver(previous[1])))
        self.assertTrue(installDNSServer(reactor, f"{self.address[0]}:{self.address[1]}"))
        self.assertFalse(installDNSServer(reactor, "dns.example"))
        config = parse_client_config(f'serverAddr = "frps.test"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\n'
                                     "loginFailExit = false\n", "toml", env={})
        frpc = FrpClientService(config, reactor=reactor)
        frpc.startService()
        self.addCleanup(frpc.stopService)
        await frpc.whenLoggedIn()
        self.assertIn(NAME, self.zone.queries)
