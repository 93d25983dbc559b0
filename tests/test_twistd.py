"""The twistd entry points, as a user runs them: ``twistd -n frps --config ...``.

These spawn real ``twistd`` processes (the same interpreter, so the checkout or the installed
package is what runs), wait for the service to log that it is up, then send SIGTERM and expect
a clean exit.
"""

import os
import signal
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from tests.support import free_port, tempDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Collect(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self.waiting = []

    def outReceived(self, data):
        self.output += data
        for text, d in list(self.waiting):
            if text in self.output:
                self.waiting.remove((text, d))
                d.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        for text, d in self.waiting:
            d.errback(AssertionError(f"exited before {text!r}: {self.output.decode()}"))
        self.waiting = []
        self.ended.callback(reason.value)

    def waitFor(self, text, timeout=20):
        d = defer.Deferred()
        if text in self.output:
            d.callback(None)
            return d
        self.waiting.append((text, d))
        return d.addTimeout(timeout, reactor)


def twistd(*args, cwd=None):
    """Spawn ``twistd ARGS`` with this interpreter; return the collecting protocol.

    (``python -m twisted.scripts.twistd`` does nothing: that module has no ``__main__`` block.)
    """
    proc = _Collect()
    env = dict(os.environ, PYTHONPATH=ROOT)
    argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *args]
    proc.transport = reactor.spawnProcess(proc, sys.executable, argv, env=env, path=cwd or ROOT)
    return proc


async def serving(port: int) -> None:
    """Wait until the twistd frps answers on ``port``: it logs that it listens before its reactor
    runs (and installs the signal handlers), but closes a connection sending garbage only from
    the running reactor."""
    closed = defer.Deferred()

    class Garbage(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"\xff" * 32)  # no frp message, no yamux frame, no TLS

        def connectionLost(self, reason):
            closed.callback(None)

    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Garbage())
    await closed.addTimeout(10, reactor)


def stoppedCleanly(testCase, ended, proc):
    """twistd stopped by SIGTERM exits through that signal (Twisted re-raises it) or with 0."""
    testCase.assertTrue(
        ended.exitCode == 0 or ended.signal == signal.SIGTERM, f"{ended!r}\n{proc.output.decode()}"
    )
    testCase.assertIn(b"Server Shut Down", proc.output)
    testCase.assertNotIn(b"Traceback", proc.output)


class TwistdTests(TestCase):
    timeout = 60

    def spawn(self, *args, cwd=None):
        """twistd ARGS, killed and reaped at cleanup if the test did not end it."""
        proc = twistd(*args, cwd=cwd)

        def reap():
            if proc.ended.called:
                return None
            proc.transport.signalProcess("KILL")
            return proc.ended

        self.addCleanup(reap)
        return proc

    def config(self, text, name):
        directory = tempDir(self)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return directory, path

    async def test_frpc_help_lists_options(self):
        proc = self.spawn("frpc", "--help")
        ended = await proc.ended
        self.assertEqual(ended.exitCode, 0)
        self.assertIn(b"--config", proc.output)

    async def test_frps_starts_and_stops_on_sigterm(self):
        port = free_port()
        directory, path = self.config(f"[common]\nbind_addr = 127.0.0.1\nbind_port = {port}\n", "frps.ini")
        proc = self.spawn("-n", "frps", "--config", path, cwd=directory)
        await proc.waitFor(b"frps started successfully")
        await serving(port)
        proc.transport.signalProcess("TERM")
        stoppedCleanly(self, await proc.ended, proc)

    async def test_two_runs_in_one_directory_do_not_clash(self):
        """Each config gets its own pid file, so a second twistd in the same directory starts."""
        directory = tempDir(self)
        procs = []
        for name in ("a.ini", "b.ini"):
            port = free_port()
            path = os.path.join(directory, name)
            with open(path, "w") as f:
                f.write(f"[common]\nbind_addr = 127.0.0.1\nbind_port = {port}\n")
            proc = self.spawn("-n", "frps", "--config", path, cwd=directory)
            await proc.waitFor(f"listening on 127.0.0.1:{port}".encode())
            await serving(port)
            procs.append(proc)
        for proc in procs:
            proc.transport.signalProcess("TERM")
            stoppedCleanly(self, await proc.ended, proc)

    async def test_bad_config_exits_nonzero_with_one_clear_line(self):
        directory, path = self.config("[common]\nserver_port = 7000\n[ssh]\ntype = tcpx\nlocal_port = 22\n", "frpc.ini")
        proc = self.spawn("-n", "frpc", "--config", path, cwd=directory)
        ended = await proc.ended
        self.assertNotEqual(ended.exitCode, 0)
        lines = proc.output.decode().splitlines()
        self.assertEqual(len(lines), 1, proc.output.decode())
        self.assertIn("frpc.ini [ssh] type", lines[0])
        self.assertIn("tcpx", lines[0])
        self.assertNotIn(b"Traceback", proc.output)

    async def test_frpc_exits_with_status_1_when_the_first_login_fails(self):
        """login_fail_exit (frp's default): like frpc, ``twistd frpc`` ends with status 1."""
        port = free_port()  # nothing listens there: the first attempt is refused
        directory, path = self.config(f'serverAddr = "127.0.0.1"\nserverPort = {port}\n', "frpc.toml")
        proc = self.spawn("-n", "frpc", "--config", path, cwd=directory)
        ended = await proc.ended
        self.assertEqual(ended.exitCode, 1, proc.output.decode())
        self.assertIn(b"login_fail_exit is set", proc.output)
        self.assertNotIn(b"Traceback", proc.output)
