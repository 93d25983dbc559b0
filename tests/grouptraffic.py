"""Who answers a group's port: backends that name themselves, and a user that counts the names.

Each member of a load-balancing group forwards to its own :class:`Banner` server, which writes
its label and closes; :func:`spread` opens user connections to the group's port one after the
other and counts which label each one got (tests/test_server_tcpgroup.py and the interop
tests of groups); :func:`groupProxy` is a member's frpc TOML.
"""

from collections import Counter

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from frptw.transport.sockets import listenTCP


class _Announce(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.label)
        self.transport.loseConnection()


class Banner(protocol.Factory):
    """A local service that answers every connection with its label, then closes it."""

    protocol = _Announce
    noisy = False

    def __init__(self, label: bytes) -> None:
        self.label = label

    @classmethod
    def listen(cls, testCase: TestCase, reactor, label: bytes) -> int:
        """Listen on a free loopback port until the test ends; the port."""
        port = listenTCP(reactor, 0, cls(label), interface="127.0.0.1")
        testCase.addCleanup(port.stopListening)
        return port.getHost().port


class _Reader(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self.done.callback(self.data)


async def answer(reactor, port: int) -> bytes:
    """What one user connection to ``port`` receives before it is closed."""
    reader = _Reader()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(protocol.Factory.forProtocol(lambda: reader))
    return await reader.done


async def spread(reactor, port: int, connections: int = 40) -> Counter:
    """How many of ``connections`` sequential user connections each label answered."""
    counts: Counter = Counter()
    for _ in range(connections):
        counts[await answer(reactor, port)] += 1
    return counts


def groupProxy(name: str, localPort: int, remotePort: int, key: str = "gk", group: str = "web") -> str:
    """A tcp proxy in a load-balancing group (frpc TOML)."""
    return (
        f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
        f'remotePort = {remotePort}\nloadBalancer.group = "{group}"\nloadBalancer.groupKey = "{key}"\n'
    )
