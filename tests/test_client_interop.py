"""Interop: our frpc (FrpClientService, in-process on the real reactor) against the real Go frps.

Every cell starts a real frps 0.65 with a TOML config, logs in, registers a tcp proxy in front
of an echo server and moves at least 8 MiB each way over 50 concurrent user connections
through it, checking sha256 of every echoed stream (tests/traffic.py).
"""

import os
import sys

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.errors import ConnectionClosed, LoginError, ProxyError
from tests.fakes import BAD_TOKEN
from tests.gofrp import GoFrp
from tests.support import LogCapture, free_port, proxiesRunning, tempDir, until
from tests.traffic import EchoServer, exchange

CONNECTIONS = 50
PER_CONNECTION = 168 * 1024  # 50 x 168 KiB = 8.2 MiB each way


class InteropMixin:
    timeout = 120

    def setUp(self) -> None:
        self.fatal = []

    @inlineCallbacks
    def startFrps(self, extra: str = "", port: int = 0):
        self.bindPort = port or free_port()
        frps = yield GoFrp.start(
            reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {self.bindPort}\nauth.token = "abc"\n{extra}\n'
        )
        self.addCleanup(frps.stop)
        return frps

    def clientConfig(self, extra: str = "", proxies: str = ""):
        text = f'serverAddr = "127.0.0.1"\nserverPort = {self.bindPort}\nauth.token = "abc"\n{extra}\n{proxies}'
        return parse_client_config(text, "toml")

    def proxyConfig(self, localPort: int, remotePort: int, extra: str = "", name: str = "echo"):
        text = f"""
[[proxies]]
name = "{name}"
type = "tcp"
localIP = "127.0.0.1"
localPort = {localPort}
remotePort = {remotePort}
{extra}
"""
        return self.clientConfig(proxies=text).proxies[0]

    def startClient(self, config) -> FrpClientService:
        service = FrpClientService(config, reactor, onFatal=self.fatal.append)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def echo(self):
        server = yield EchoServer.listen(reactor)
        self.addCleanup(server.stop)
        return server

    @inlineCallbacks
    def cell(self, frpsExtra: str = "", clientExtra: str = "", proxyExtra: str = "", bindPort: int = 0):
        """One matrix cell: log in, add a proxy through the API, move the traffic."""
        yield self.startFrps(frpsExtra, bindPort)
        server = yield self.echo()
        service = self.startClient(self.clientConfig(clientExtra))
        runId = yield service.whenLoggedIn()
        self.assertEqual(len(runId), 16)
        remote = free_port()
        status = yield service.addProxy(self.proxyConfig(server.port, remote, proxyExtra))
        self.assertEqual((status.status, status.remote_addr, status.remote_port), ("running", f"127.0.0.1:{remote}", remote))
        moved = yield exchange(reactor, remote, PER_CONNECTION, CONNECTIONS)
        self.assertEqual(moved, PER_CONNECTION * CONNECTIONS)
        self.assertEqual(self.fatal, [])
        return service


class MatrixTests(InteropMixin, TestCase):
    def test_defaults_tls_and_mux(self):
        return self.cell()

    def test_tls_off(self):
        return self.cell(clientExtra="transport.tls.enable = false")

    def test_mux_off(self):
        return self.cell(frpsExtra="transport.tcpMux = false", clientExtra="transport.tcpMux = false")

    def test_mux_and_tls_off(self):
        return self.cell(
            frpsExtra="transport.tcpMux = false",
            clientExtra="transport.tcpMux = false\ntransport.tls.enable = false",
        )

    def test_use_encryption(self):
        return self.cell(proxyExtra="transport.useEncryption = true")

    def test_use_compression(self):
        return self.cell(proxyExtra="transport.useCompression = true")

    def test_encryption_and_compression(self):
        return self.cell(proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    def test_encryption_and_compression_without_mux(self):
        return self.cell(
            frpsExtra="transport.tcpMux = false",
            clientExtra="transport.tcpMux = false",
            proxyExtra="transport.useEncryption = true\ntransport.useCompression = true",
        )

    def test_custom_first_byte(self):
        """frps with the HTTPS vhost on its bind port routes a plain ClientHello (0x16) to the
        vhost; only a client that sends 0x17 first reaches frp (wire-protocol.md §2.1)."""
        port = free_port()
        return self.cell(
            frpsExtra=f"vhostHTTPSPort = {port}",
            clientExtra="transport.tls.disableCustomTLSFirstByte = false",
            bindPort=port,
        )

    @inlineCallbacks
    def test_without_custom_first_byte_https_vhost_takes_the_connection(self):
        """The control for the cell above: a plain ClientHello cannot log in to that frps."""
        self.bindPort = free_port()
        yield self.startFrps(f"vhostHTTPSPort = {self.bindPort}", port=self.bindPort)
        service = self.startClient(self.clientConfig())
        yield self.assertFailure(service.whenLoggedIn(), ConnectionClosed)
        self.assertEqual(len(self.fatal), 1)

    @inlineCallbacks
    def test_auth_scopes_user_and_heartbeats(self):
        """HeartBeats + NewWorkConns scopes on both sides, a user prefix, explicit Pings."""
        scopes = 'auth.additionalScopes = ["HeartBeats", "NewWorkConns"]'
        frps = yield self.startFrps(f'{scopes}\ntransport.heartbeatTimeout = 3\nlog.level = "debug"')
        server = yield self.echo()
        service = self.startClient(
            self.clientConfig(f'{scopes}\nuser = "u1"\ntransport.heartbeatInterval = 1\ntransport.heartbeatTimeout = 3')
        )
        yield service.whenLoggedIn()
        remote = free_port()
        yield service.addProxy(self.proxyConfig(server.port, remote))
        yield frps.waitFor("[u1.echo]", 5)
        # Four Pings span more than frps's 3 s heartbeat timeout.
        yield frps.waitFor("receive heartbeat", timeout=10, count=4)
        moved = yield exchange(reactor, remote, PER_CONNECTION, CONNECTIONS)
        self.assertEqual(moved, PER_CONNECTION * CONNECTIONS)
        self.assertNotIn("heartbeat timeout", frps.output)

    @inlineCallbacks
    def test_wrong_token(self):
        yield self.startFrps()
        config = self.clientConfig()
        config.auth.token = "wrong"
        service = self.startClient(config)
        error = yield self.assertFailure(service.whenLoggedIn(), LoginError)
        self.assertEqual(str(error), BAD_TOKEN)
        [fatal] = self.fatal
        self.assertEqual(str(fatal.value), BAD_TOKEN)
        self.assertFalse(service.running)


class ProxyProtocolServer(Protocol):
    """Records the PROXY header line, then echoes."""

    def connectionMade(self) -> None:
        self.buffer = b""
        self.factory.headers.append(None)
        self.index = len(self.factory.headers) - 1

    def dataReceived(self, data: bytes) -> None:
        if self.factory.headers[self.index] is None:
            self.buffer += data
            if b"\r\n" not in self.buffer:
                return
            line, data = self.buffer.split(b"\r\n", 1)
            self.factory.headers[self.index] = line
        self.transport.write(data)


class BehaviourTests(InteropMixin, TestCase):
    @inlineCallbacks
    def test_proxy_protocol_v1_reaches_the_local_service(self):
        yield self.startFrps()
        factory = Factory.forProtocol(ProxyProtocolServer)
        factory.headers = []
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        service = self.startClient(self.clientConfig())
        remote = free_port()
        yield service.addProxy(
            self.proxyConfig(port.getHost().port, remote, 'transport.proxyProtocolVersion = "v1"')
        )
        yield exchange(reactor, remote, 1024, 3)
        self.assertEqual(len(factory.headers), 3)
        for header in factory.headers:
            words = header.split(b" ")
            self.assertEqual(words[:4], [b"PROXY", b"TCP4", b"127.0.0.1", b"127.0.0.1"])
            self.assertEqual(int(words[5]), remote)

    @inlineCallbacks
    def test_client_bandwidth_limit(self):
        """256 KiB/s for the proxy, both ways on one bucket, the first 256 KiB free: 256 KiB
        echoed (512 KiB through the limit) takes about 1 s (tests/test_bandwidth_interop.py
        compares the timing with the Go pair)."""
        yield self.startFrps()
        server = yield self.echo()
        service = self.startClient(self.clientConfig())
        remote = free_port()
        yield service.addProxy(self.proxyConfig(server.port, remote, 'transport.bandwidthLimit = "256KB"'))
        started = reactor.seconds()
        moved = yield exchange(reactor, remote, 256 * 1024, 1)
        self.assertEqual(moved, 256 * 1024)
        self.assertGreater(reactor.seconds() - started, 0.7)

    @inlineCallbacks
    def test_duplicate_remote_port_is_refused_with_frps_text(self):
        yield self.startFrps()
        server = yield self.echo()
        service = self.startClient(self.clientConfig())
        remote = free_port()
        yield service.addProxy(self.proxyConfig(server.port, remote, name="a"))
        error = yield self.assertFailure(
            service.addProxy(self.proxyConfig(server.port, remote, name="b")), ProxyError
        )
        self.assertEqual(str(error), "port already used")
        self.assertEqual(service.proxyStatus("b").status, "start error")
        yield service.removeProxy("a")
        self.assertEqual(self.fatal, [])

    @inlineCallbacks
    def test_keeps_retrying_without_login_fail_exit(self):
        frps = yield self.startFrps()
        config = self.clientConfig("loginFailExit = false")
        config.auth.token = "wrong"
        service = self.startClient(config)
        logs = LogCapture(self)
        loggedIn = service.whenLoggedIn()
        yield ensureDeferred(logs.waitFor("login to frps failed", count=2))  # the first retry was refused too
        self.assertEqual(frps.output.count("token in login doesn't match"), 2)
        self.assertFalse(loggedIn.called)
        self.assertTrue(service.running)
        self.assertEqual(self.fatal, [])
        yield service.stopService()
        yield self.assertFailure(loggedIn, Exception)


class ChaosTests(InteropMixin, TestCase):
    timeout = 180

    @inlineCallbacks
    def test_frps_restart(self):
        """Kill and restart the Go frps under a running frpc: the proxy comes back by itself."""
        frps = yield self.startFrps()
        server = yield self.echo()
        remote = free_port()
        proxies = f"""
[[proxies]]
name = "echo"
type = "tcp"
localPort = {server.port}
remotePort = {remote}
"""
        service = self.startClient(self.clientConfig(proxies=proxies))
        firstRunId = yield service.whenLoggedIn()
        yield frps.waitFor("new proxy [echo]", 10)
        yield exchange(reactor, remote, 64 * 1024, 5)
        yield frps.stop()
        yield ensureDeferred(until(lambda: service.proxyStatus("echo").status != "running",
                                   "our frpc to notice that frps is gone"))
        frps = yield self.startFrps(port=self.bindPort)
        yield frps.waitFor("new proxy [echo]", 30)
        self.assertIn(f"[{firstRunId}] client login info", frps.output)  # same run id after reconnect
        yield ensureDeferred(proxiesRunning(service, "echo"))
        moved = yield exchange(reactor, remote, PER_CONNECTION, CONNECTIONS)
        self.assertEqual(moved, PER_CONNECTION * CONNECTIONS)
        self.assertEqual(self.fatal, [])


class TwistdTests(InteropMixin, TestCase):
    @inlineCallbacks
    def test_login_fail_exit_makes_twistd_exit_non_zero(self):
        """``twistd -n frpc`` with a token frps refuses exits with a non-zero status, like frpc."""
        yield self.startFrps()
        directory = tempDir(self)
        path = os.path.join(directory, "frpc.toml")
        with open(path, "w") as f:
            f.write(f'serverAddr = "127.0.0.1"\nserverPort = {self.bindPort}\nauth.token = "wrong"\n')
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", "frpc", "--config", path],
            env={**os.environ, "PYTHONPATH": root},
            path=directory,
        ).addTimeout(60, reactor)
        self.assertEqual(code, 1, out + err)
        self.assertIn(BAD_TOKEN.encode(), out)
