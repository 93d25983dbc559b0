"""The 30 s routing deadline of the HTTPS vhost and of tcpmux, on real sockets of a running
frps (issue 14: every phase a peer can stall has a deadline).

A connection that sends part of its ClientHello (HTTPS) or of its CONNECT head (tcpmux) and
then nothing is open a moment before :data:`PREAMBLE_TIMEOUT` and closed right after, with one
log line, while the good session of :mod:`tests.badinput` keeps working.  frps runs on its
SplitClock, so the test advances the deadline instead of waiting for it.  (The HTTP vhost's
head deadline is ``test_vhost_badinput``'s slowloris test; the bind port's are in
``test_badinput_server``; the management servers' in ``test_web``.)
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.server.vhost.prerouting import PREAMBLE_TIMEOUT
from tests.badinput import GoodSession, connectRaw
from tests.fakes import client_hello
from tests.support import LogCapture, free_port


class PreambleDeadlineTests(TestCase):
    timeout = 60

    async def stalls(self, portName: str, partial: bytes, *fragments: str) -> None:
        ports = {}

        def configure(config, remote):
            ports["https"] = config.vhost_https_port = free_port()
            ports["tcpmux"] = config.tcpmux_http_connect_port = free_port()

        good = await GoodSession.start(self, configure=configure)
        logs = LogCapture(self)
        since = logs.mark()
        probe = await connectRaw(self, ports[portName])
        probe.transport.write(partial)
        await good.sync()  # frps read the bytes
        good.clock.advance(PREAMBLE_TIMEOUT - 0.5)
        await good.sync()
        self.assertFalse(probe.closed.called, "closed before the deadline")
        good.clock.advance(0.5)
        probe.closed.addTimeout(5, reactor)
        await probe.closed
        lines = logs.reported(since, ("frptw.server",))
        self.assertEqual(len(lines), 1, lines)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        await good.stillWorks()

    async def test_https_client_hello_cut_short(self):
        await self.stalls("https", client_hello("a.test")[:40], "30 s")

    async def test_tcpmux_connect_head_unfinished(self):
        await self.stalls("tcpmux", b"CONNECT a.test:443 HTTP/1.1\r\nHost: a", "30 s")
