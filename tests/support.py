"""Helpers shared by the test modules (which import from here and never from each other).

* real time, for tests on the real reactor: :func:`sleep` only to pace traffic, never to
  synchronise; :func:`until` polls, bounded, for a condition and fails saying what it waited
  for; :func:`holds` checks a condition stays true for a while *after* a positive event showed
  that the thing which would break it had its chance;
* :class:`LogCapture`, :class:`SplitClock`, :func:`pumpStrings` (two protocols on
  ``StringTransport`` s), :func:`tempDir`, :func:`free_port`;
* loopback TCP peers with backpressure: :class:`Peer`, :class:`Notifying`, :func:`tcpPair`,
  :func:`closeOnCleanup`, :func:`stalled`, :func:`buffered`;
* :func:`scaled`: a test's size in CI, or its full size when ``FRPTW_SCALE=full``.
"""

import hashlib
import itertools
import os
import random
import shutil
import socket
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Union

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from frptw.transport.switch import SwitchableProtocol
from frptw.wire import messages as m

#: What a test waits for: a text, or a callable giving one when the wait fails (to show state).
What = Union[str, Callable[[], str]]

POLL_INTERVAL = 0.01


#: ``FRPTW_SCALE=full`` in the environment: the scale tests (bursts, held connections) run at
#: the sizes of their issue instead of sizes that fit the suite on a shared machine.
SCALE_VARIABLE = "FRPTW_SCALE"


def scaled(ci, full):
    """``full`` when ``FRPTW_SCALE=full``, else ``ci``."""
    return full if os.environ.get(SCALE_VARIABLE) == "full" else ci


# -- real time -----------------------------------------------------------------------------------


async def sleep(seconds: float) -> None:
    """Let the real reactor run for ``seconds``: to pace traffic, not to wait for an event."""
    await deferLater(reactor, seconds, lambda: None)


def _describe(what: What) -> str:
    return what() if callable(what) else what


async def until(predicate: Callable[[], bool], what: What, timeout: float = 5.0) -> None:
    """Poll (real time, bounded) until ``predicate()`` holds: for real network events only.

    Fails with ``timed out after <timeout> s waiting for <what>``."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {_describe(what)}")
        await sleep(POLL_INTERVAL)


async def holds(predicate: Callable[[], bool], what: What, duration: float = 0.2) -> None:
    """Poll (real time) that ``predicate()`` stays true for ``duration`` seconds; fail at once
    when it does not.

    Only meaningful after a positive event proved that whatever could break the condition has
    been processed (e.g. a later message got its answer); the extra time catches late effects.
    """
    deadline = reactor.seconds() + duration
    while True:
        if not predicate():
            raise AssertionError(f"no longer true: {_describe(what)}")
        if reactor.seconds() >= deadline:
            return
        await sleep(POLL_INTERVAL)


async def proxiesRunning(client, *names: str, timeout: float = 10.0) -> None:
    """Wait until our frpc service (:class:`frptw.client.FrpClientService`) reports every proxy
    of ``names`` as running."""
    await until(lambda: all(client.proxyStatus(name).status == "running" for name in names),
                lambda: "proxies running: " + ", ".join(_proxyState(client, name) for name in names),
                timeout)


def _proxyState(client, name: str) -> str:
    status = client.proxyStatus(name)
    return f"{name} {status.status}" + (f" ({status.err})" if status.err else "")


# -- logs and clocks -----------------------------------------------------------------------------

REPORTED_LEVELS = (LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical)


class LogCapture:
    """Every log event published while a test runs (the observer is removed in the test's
    cleanup)."""

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.events: List[dict] = []
        self._observer = self.events.append
        globalLogPublisher.addObserver(self._observer)
        testcase.addCleanup(globalLogPublisher.removeObserver, self._observer)

    def mark(self) -> int:
        """A position in the capture, for :meth:`reported` ``(since=...)``."""
        return len(self.events)

    def texts(self, prefixes: Sequence[str] = ("frptw",), since: int = 0) -> List[str]:
        """Formatted lines of the ``prefixes`` namespaces since ``since``, every level."""
        return [formatEvent(event) for event in self.events[since:]
                if event.get("log_namespace", "").startswith(tuple(prefixes))]

    def reported(self, since: int, prefixes: Sequence[str] = ("frptw.server", "frptw.transport")) -> List[str]:
        """The info-or-worse lines of ``prefixes`` namespaces since ``since``, formatted;
        frp's ordinary per-login "client login info" line is not a report of bad input."""
        lines = []
        for event in self.events[since:]:
            if not event.get("log_namespace", "").startswith(tuple(prefixes)):
                continue
            if event.get("log_level") not in REPORTED_LEVELS:
                continue
            if "client login info" in (event.get("log_format") or ""):
                continue
            lines.append(formatEvent(event))
        return lines

    def failures(self) -> List[dict]:
        """Events that carry a traceback (``log.failure``)."""
        return [event for event in self.events if "log_failure" in event]

    async def waitFor(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        """Wait until ``count`` formatted lines contain ``text``."""
        await until(lambda: sum(text in line for line in self.texts(("",))) >= count,
                    lambda: f"{count} log line(s) with {text!r}; got:\n" + "\n".join(self.texts(("",))),
                    timeout)


@implementer(IReactorTime)
class SplitClock:
    """An ``IReactorTime`` whose timers run on a ``task.Clock`` the test advances, except
    zero-delay calls, which go to the real reactor: those are "next turn" hand-offs (TLS write
    coalescing, yamux notifications) that a live session needs to move bytes."""

    def __init__(self, realReactor) -> None:
        self._reactor = realReactor
        self.fake = Clock()

    def seconds(self) -> float:
        return self.fake.seconds()

    def callLater(self, delay, f, *args, **kw):
        if delay <= 0:
            return self._reactor.callLater(0, f, *args, **kw)
        return self.fake.callLater(delay, f, *args, **kw)

    def getDelayedCalls(self):
        return self.fake.getDelayedCalls()

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)


# -- in memory -------------------------------------------------------------------------------------


def pumpStrings(a: Protocol, ta, b: Protocol, tb, clocks: Iterable[Clock] = (), rounds: int = 20) -> None:
    """Shuttle bytes between two protocols on ``StringTransport`` s ``ta`` and ``tb`` until both
    are quiet (advancing ``clocks`` by 0 so that writes TLS coalesces go out).

    Fails if they still talk after ``rounds`` rounds."""
    clocks = list(clocks)
    for _ in range(rounds):
        for clock in clocks:
            clock.advance(0)
        moved = False
        for src, dst in ((ta, b), (tb, a)):
            data = src.value()
            if data:
                src.clear()
                dst.dataReceived(data)
                moved = True
        if not moved:
            return
    raise AssertionError(f"still exchanging bytes after {rounds} rounds")


def toml(value: bool) -> str:
    """A boolean as TOML (and frp's INI) spells it."""
    return "true" if value else "false"


def readMessages(data: bytes) -> List[m.Message]:
    """Every whole frp message in ``data`` (clear bytes)."""
    reader = m.MessageReader()
    reader.feed(data)
    found = []
    while (message := reader.next_message()) is not None:
        found.append(message)
    return found


def tempDir(testcase: SynchronousTestCase) -> str:
    """A fresh directory (absolute path) under the test's temporary tree, removed at cleanup."""
    path = os.path.abspath(testcase.mktemp())
    os.makedirs(path)
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


# -- ports and loopback TCP ------------------------------------------------------------------------

#: Ports handed out by :func:`free_port`: below Linux's ephemeral range (32768-60999), so no
#: outgoing connection of a concurrently running test can take one as its source port
#: between the check here and the moment frps binds it.  ``trial -jN`` runs worker ``i`` in
#: ``_trial_temp/i``: each worker draws from its own slice of the range, so two workers never
#: hand out the same port.  Within a slice they come in a shuffled cycle, so a test asking for
#: several ports before binding any never gets the same one twice.
_WORKER_SLICES = 8


def _workerPorts() -> "itertools.cycle[int]":
    name = os.path.basename(os.getcwd())
    index = int(name) % _WORKER_SLICES if name.isdigit() else 0
    width = (32768 - 20000) // _WORKER_SLICES
    first = 20000 + index * width
    return itertools.cycle(random.sample(range(first, first + width), width))


_PORTS = _workerPorts()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free right now (for configs handed to the Go binaries, or
    remote ports that must be known in advance)."""
    for _ in range(200):
        port = next(_PORTS)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in this worker's slice of 20000-32767")


#: Twisted's TCP write buffer size: above it a transport pauses its producer.
TCP_BUFFER = 65536


class Notifying(SwitchableProtocol):
    """A switchable protocol that says when it is connected (the spliced server-side ends)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: Deferred = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self)


@implementer(IPushProducer)
class Peer(Protocol):
    """An end user of a spliced pair: sends as a well-behaved push producer, hashes what it
    receives.  It sends a 64 KiB pattern over and over, or the 64 KiB ``chunks`` given."""

    def __init__(self, seed: int, chunks: Optional[Iterator[bytes]] = None) -> None:
        self._chunks = chunks
        self.toSend = 0
        self.sent = 0
        self.received = 0
        self.sentHash = hashlib.sha256()
        self.receivedHash = hashlib.sha256()
        self._chunk = hashlib.sha256(bytes([seed])).digest() * 2048  # 64 KiB
        self._closeAfterSending = False
        self.paused = False
        self.made: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self._waitFor: Optional[tuple] = None

    def connectionMade(self) -> None:
        self.made.callback(self)

    def send(self, count: int, close: bool = False) -> None:
        """Send ``count`` bytes (then close, if asked) as fast as the transport takes them."""
        self.toSend = count
        self._closeAfterSending = close
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.toSend:
            chunk = next(self._chunks) if self._chunks is not None else self._chunk
            chunk = chunk[: self.toSend - self.sent]
            self.sent += len(chunk)
            self.sentHash.update(chunk)
            self.transport.write(chunk)
        if self.sent == self.toSend:
            self.transport.unregisterProducer()
            if self._closeAfterSending:
                self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.paused = True

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        self.receivedHash.update(data)
        if self._waitFor is not None and self.received >= self._waitFor[0]:
            d = self._waitFor[1]
            self._waitFor = None
            d.callback(self.received)

    def whenReceived(self, count: int) -> Deferred:
        if self.received >= count:
            return succeed(self.received)
        self._waitFor = (count, Deferred())
        return self._waitFor[1]

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(reason.value)


async def tcpPair(testCase: TestCase, client: Protocol, server: Protocol, small: bool = False) -> None:
    """Connect ``client`` to ``server`` over loopback TCP (``server`` has a ``made`` Deferred,
    like Notifying and Peer).

    ``small`` shrinks the kernel socket buffers so that a stopped reader blocks the chain after
    a few hundred KiB instead of tens of MiB.
    """
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(lambda: server))
    testCase.addCleanup(port.stopListening)
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(lambda: client))
    await server.made
    if small:
        for transport in (client.transport, server.transport):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                transport.getHandle().setsockopt(socket.SOL_SOCKET, option, 32 * 1024)


def closeOnCleanup(testCase: TestCase, peer: Peer) -> None:
    """Abort ``peer``'s connection at the end of the test, if the test left it open."""

    def close() -> Deferred:
        if not peer.lost.called:
            peer.transport.abortConnection()
        return peer.lost

    testCase.addCleanup(close)


async def stalled(peer: Peer, timeout: float = 20.0, quiet: float = 0.3) -> None:
    """Wait on the real reactor until ``peer`` is paused and has sent nothing for ``quiet``
    seconds (a real-socket test has no event for "nothing moves any more")."""
    interval = 0.02
    waited = still = 0.0
    last = -1
    while still < quiet:
        if waited > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for the sender to stall "
                                 f"(sent {peer.sent}, paused {peer.paused})")
        await sleep(interval)
        waited += interval
        still = still + interval if peer.paused and peer.sent == last else 0.0
        last = peer.sent


def buffered(transport) -> int:
    """Bytes waiting in a Twisted TCP transport's write buffer."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
