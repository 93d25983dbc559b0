"""Run the real Go ``frps``/``frpc`` as subprocesses of the Twisted reactor, for interop tests.

The config text is written to a private temporary directory, removed once the process has
exited; the process's output (colour codes stripped) accumulates in :attr:`GoFrp.output` so
tests can wait for frp's own log lines, e.g. ``frps started successfully`` or the second
``start proxy success`` after a reconnect (:meth:`GoFrp.waitFor` ``count``).  :meth:`GoFrp.stop`
ends only the process this object started (SIGTERM, then SIGKILL after a grace period);
:meth:`GoFrp.kill` is ``kill -9`` at once (the chaos tests).
"""

import os
import re
import shutil
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReactorProcess

from tests.frpbin import frp_binary

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The checkout these tests run from (frptw under twistd runs from it too).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The line each program logs once it is ready to be used.
READY_LINES = {"frps": "frps started successfully", "frpc": "login to server success"}


def writeConfig(kind: str, text: str, fmt: str = "toml") -> str:
    """``text`` in a new private directory as ``kind.fmt``; its path."""
    directory = tempfile.mkdtemp(prefix=f"frptw-{kind}-")
    path = os.path.join(directory, f"{kind}.{fmt}")
    with open(path, "w") as f:
        f.write(text)
    return path


class _Output(protocol.ProcessProtocol):
    def __init__(self, owner: "GoFrp") -> None:
        self._owner = owner

    def outReceived(self, data: bytes) -> None:
        self._owner._received(data)

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self._owner._ended(reason)


class GoFrp:
    """One running real frp program."""

    def __init__(self, reactor: IReactorProcess, kind: str, config_path: Optional[str]) -> None:
        self.reactor = reactor
        self.kind = kind
        self.config_path = config_path
        self.output = ""
        self.exitReason = None
        self._waiters: List[Tuple[str, int, defer.Deferred]] = []
        self._exit = defer.Deferred()
        self._process = None

    @classmethod
    def start(
        cls,
        reactor,
        kind: str,
        config_text: str,
        fmt: str = "toml",
        ready: Optional[str] = "default",
        timeout: float = 15.0,
        prefix: Sequence[str] = (),
    ) -> defer.Deferred:
        """Start ``kind`` ("frps" or "frpc") with ``config_text``; fire with the GoFrp once
        ``ready`` (by default frp's own ready line; ``None`` = don't wait) has been logged.
        ``prefix`` goes before the command (``ip netns exec NS``)."""
        binary = frp_binary(kind)
        path = writeConfig(kind, config_text, fmt)
        if ready == "default":
            ready = READY_LINES[kind]
        return cls.command(reactor, kind, [*prefix, binary, "-c", path], ready, timeout, directory=os.path.dirname(path))

    @classmethod
    def startOurs(cls, reactor, kind: str, config_text: str, ready: Optional[str] = "default",
                  timeout: float = 30.0) -> defer.Deferred:
        """Like :meth:`start`, but frptw's ``kind`` under ``twistd -n`` from this checkout (its
        own process, so its memory and descriptors are its own); frptw logs the same ready
        lines as frp."""
        path = writeConfig(kind, config_text)
        return cls.runOurs(reactor, kind, ["--config", path], ready, timeout, directory=os.path.dirname(path))

    @classmethod
    def runOurs(cls, reactor, kind: str, args: Sequence[str], ready: Optional[str] = "default",
                timeout: float = 30.0, directory: Optional[str] = None) -> defer.Deferred:
        """frptw's ``kind`` under ``twistd -n`` with the command line ``args`` (after the
        command name: a config file, or frp's flags)."""
        if ready == "default":
            ready = READY_LINES[kind]
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
                kind, *args]
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT}
        return cls.command(reactor, f"frptw {kind}", argv, ready, timeout, directory=directory, env=env)

    @classmethod
    def run(cls, reactor, kind: str, args: Sequence[str], ready: Optional[str] = "default",
            timeout: float = 15.0) -> defer.Deferred:
        """The real ``kind`` with the command line ``args`` (frp's flags instead of a file)."""
        if ready == "default":
            ready = READY_LINES[kind]
        return cls.command(reactor, kind, [frp_binary(kind), *args], ready, timeout)

    @property
    def pid(self) -> Optional[int]:
        """The running process's id (None once it has exited)."""
        return self._process.pid if self._process is not None else None

    @classmethod
    def command(cls, reactor, name: str, argv: Sequence[str], ready: Optional[str], timeout: float = 15.0,
                directory: Optional[str] = None, env: Optional[dict] = None) -> defer.Deferred:
        """Run any ``argv`` the same way (output collected, :meth:`waitFor`, :meth:`stop`);
        ``directory``, if given, is the working directory and is removed when it exits."""
        self = cls(reactor, name, os.path.join(directory, "-") if directory else None)
        env = env if env is not None else {"PATH": os.environ.get("PATH", "")}
        self._process = reactor.spawnProcess(_Output(self), argv[0], list(argv), env=env, path=directory)
        if ready is None:
            return defer.succeed(self)
        d = self.waitFor(ready, timeout)
        d.addCallback(lambda _: self)

        def failed(f):
            return self.stop().addBoth(lambda _: f)

        d.addErrback(failed)
        return d

    def _received(self, data: bytes) -> None:
        self.output += _ANSI.sub("", data.decode("utf-8", "replace"))
        still = []
        for text, count, d in self._waiters:
            if self.output.count(text) >= count:
                d.callback(self.output)
            else:
                still.append((text, count, d))
        self._waiters = still

    def _ended(self, reason) -> None:
        self.exitReason = reason
        self._process = None
        if self.config_path is not None:
            shutil.rmtree(os.path.dirname(self.config_path), ignore_errors=True)
        waiters, self._waiters = self._waiters, []
        for text, count, d in waiters:
            d.errback(AssertionError(f"{self.kind} exited before logging {text!r} {count} time(s):\n{self.output}"))
        self._exit.callback(None)

    def waitFor(self, text: str, timeout: float = 15.0, count: int = 1) -> defer.Deferred:
        """Fire with the output so far once ``text`` has appeared ``count`` times in it (from the
        start of the process); fail after ``timeout`` s, showing the output."""
        if self.output.count(text) >= count:
            return defer.succeed(self.output)
        if self._process is None and self.exitReason is not None:
            return defer.fail(AssertionError(f"{self.kind} has exited:\n{self.output}"))
        d = defer.Deferred()
        self._waiters.append((text, count, d))

        def expired(f):
            f.trap(defer.TimeoutError, defer.CancelledError)
            raise AssertionError(f"{self.kind} did not log {text!r} {count} time(s) within {timeout}s:\n{self.output}")

        d.addTimeout(timeout, self.reactor)
        d.addErrback(expired)
        return d

    def kill(self) -> defer.Deferred:
        """``kill -9`` the process (no clean-up: the kernel closes its sockets); fire when it
        has exited."""
        if self._process is None:
            return defer.succeed(None)
        done = self._whenExited()
        try:
            self._process.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass
        return done

    def _whenExited(self) -> defer.Deferred:
        done = defer.Deferred()
        self._exit.addBoth(lambda r: (done.callback(None), r)[1])
        return done

    def stop(self, grace: float = 5.0) -> defer.Deferred:
        """End the process (SIGTERM, then SIGKILL after ``grace`` s); fire when it has exited."""
        if self._process is None:
            return defer.succeed(None)
        done = self._whenExited()
        try:
            self._process.signalProcess("TERM")
        except error.ProcessExitedAlready:
            return done

        def kill():
            if self._process is not None:
                try:
                    self._process.signalProcess("KILL")
                except error.ProcessExitedAlready:
                    pass

        call = self.reactor.callLater(grace, kill)
        done.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return done
