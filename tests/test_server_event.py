"""frptw.server._event: Event, whenAll and abortAll."""

from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.server._event import Event, abortAll, whenAll


class Closing:
    """A connection whose transport's abort fires its ``closed`` event on a later call."""

    def __init__(self) -> None:
        self.closed = Event()
        self.transport = StringTransport()


class EventTests(SynchronousTestCase):
    def test_each_waiter_gets_its_own_deferred_and_late_waiters_fire_at_once(self):
        event = Event()
        first, second = event.wait(), event.wait()
        self.assertNoResult(first)
        event.fire()
        event.fire()  # once only
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))
        self.assertIsNone(self.successResultOf(event.wait()))

    def test_when_all_waits_for_every_part_failures_included(self):
        pending: Deferred = Deferred()
        d = whenAll([fail(RuntimeError("could not close")), pending])
        self.assertNoResult(d)
        pending.callback("ignored")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])  # consumed, not left unhandled

    def test_abort_all_aborts_each_and_fires_once_all_closed(self):
        conns = [Closing(), Closing()]
        d = abortAll(conns)
        self.assertTrue(all(c.transport.disconnecting for c in conns))
        conns[0].closed.fire()
        self.assertNoResult(d)
        conns[1].closed.fire()
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(abortAll([])))
