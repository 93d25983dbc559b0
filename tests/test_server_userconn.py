"""A user connection of an frps proxy: paused only while it waits for a work connection.

One that gets a pooled work connection at once is joined without a pause and resume of its
transport (each a stop and restart of reading: an ``epoll_ctl`` apiece on every new connection,
issue 13); one that has to wait reads nothing until its work connection comes.
"""

from typing import List

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.proxy_base import BaseProxy, UserConnection
from frptw.wire.messages import NewProxy
from tests.fakes import FakeControl, backendBytes


class CountingTransport(StringTransport):
    """A StringTransport that records each pause and resume."""

    def __init__(self) -> None:
        super().__init__(hostAddress=IPv4Address("TCP", "127.0.0.1", 6000),
                         peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
        self.calls: List[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.calls.append("resume")
        super().resumeProducing()


def connect(immediate: bool):
    owner = FakeControl(Clock(), immediate=immediate)
    proxy = BaseProxy(owner, NewProxy(proxy_name="p", proxy_type="tcp"), b"key")
    user, transport = UserConnection(proxy), CountingTransport()
    user.makeConnection(transport)
    return owner, user, transport


class UserConnectionTests(SynchronousTestCase):
    def test_joined_at_once_without_a_pause(self) -> None:
        owner, user, transport = connect(immediate=True)
        self.assertIsNotNone(user.switchedTo)
        self.assertEqual(transport.calls, [])
        user.dataReceived(b"hello")
        self.assertEqual(backendBytes(owner.works[0]), b"hello")

    def test_paused_while_waiting_for_a_work_connection(self) -> None:
        owner, user, transport = connect(immediate=False)
        self.assertEqual(transport.calls, ["pause"])
        self.assertIsNone(user.switchedTo)
        owner.pending[0].callback(owner.makeWork())
        self.assertEqual(transport.calls, ["pause", "resume"])
        user.dataReceived(b"late")
        self.assertEqual(backendBytes(owner.works[0]), b"late")
