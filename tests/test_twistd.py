"""The twistd entry points, as a user runs them: ``twistd -n frps --config ...``.

These spawn real ``twistd`` processes (the same interpreter, so the checkout or the installed
package is what runs), wait for the service to log that it is up, then send SIGTERM and expect
a clean exit.
"""

import os
import sys
import tempfile

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase

from tests.frpbin import free_port

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
        self.ended.callback(reason.value.exitCode)

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


class TwistdTests(TestCase):
    timeout = 60

    def config(self, text, name):
        directory = tempfile.mkdtemp(prefix="frptw-twistd-")
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return directory, path

    async def test_frpc_help_lists_options(self):
        proc = twistd("frpc", "--help")
        code = await proc.ended
        self.assertEqual(code, 0)
        self.assertIn(b"--config", proc.output)

    async def test_frps_starts_and_stops_on_sigterm(self):
        port = free_port()
        directory, path = self.config(f"[common]\nbind_addr = 127.0.0.1\nbind_port = {port}\n", "frps.ini")
        proc = twistd("-n", "frps", "--config", path, cwd=directory)
        self.addCleanup(lambda: proc.transport.pid and proc.transport.signalProcess("KILL"))
        await proc.waitFor(str(port).encode())
        proc.transport.signalProcess("TERM")
        code = await proc.ended
        self.assertEqual(code, 0, proc.output.decode())
        self.assertNotIn(b"Traceback", proc.output)

    async def test_two_runs_in_one_directory_do_not_clash(self):
        """Each config gets its own pid file, so a second twistd in the same directory starts."""
        directory = tempfile.mkdtemp(prefix="frptw-twistd-")
        procs = []
        for name in ("a.ini", "b.ini"):
            port = free_port()
            path = os.path.join(directory, name)
            with open(path, "w") as f:
                f.write(f"[common]\nbind_addr = 127.0.0.1\nbind_port = {port}\n")
            proc = twistd("-n", "frps", "--config", path, cwd=directory)
            self.addCleanup(lambda p=proc: p.transport.pid and p.transport.signalProcess("KILL"))
            await proc.waitFor(str(port).encode())
            procs.append(proc)
        for proc in procs:
            proc.transport.signalProcess("TERM")
            self.assertEqual(await proc.ended, 0)

    async def test_bad_config_exits_nonzero_with_one_clear_line(self):
        directory, path = self.config("[common]\nserver_port = 7000\n[ssh]\ntype = tcpx\nlocal_port = 22\n", "frpc.ini")
        proc = twistd("-n", "frpc", "--config", path, cwd=directory)
        code = await proc.ended
        self.assertNotEqual(code, 0)
        self.assertIn(b"tcpx", proc.output)
        self.assertNotIn(b"Traceback", proc.output)
