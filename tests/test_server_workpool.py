"""The per-client pool of idle work connections."""

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import NoWorkConnection
from frptw.server.workpool import WorkConnPool
from frptw.transport.switch import SwitchableProtocol


def workConn():
    conn = SwitchableProtocol()
    conn.makeConnection(StringTransport())
    return conn


class WorkConnPoolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.requests = 0
        self.pool = WorkConnPool(capacity=2, timeout=10, clock=self.clock, request=self.request)

    def request(self):
        self.requests += 1

    def test_idle_connection_is_taken_and_replaced(self):
        conn = workConn()
        self.assertTrue(self.pool.put(conn))
        self.assertIs(self.successResultOf(self.pool.get()), conn)
        self.assertEqual(self.requests, 1)
        self.assertEqual(len(self.pool), 0)

    def test_capacity(self):
        self.assertTrue(self.pool.put(workConn()))
        self.assertTrue(self.pool.put(workConn()))
        self.assertFalse(self.pool.put(workConn()))

    def test_waiting_for_a_connection_asks_twice(self):
        d = self.pool.get()
        self.assertNoResult(d)
        self.assertEqual(self.requests, 1)
        conn = workConn()
        self.pool.put(conn)
        self.assertIs(self.successResultOf(d), conn)
        self.assertEqual(self.requests, 2)  # and one more to refill, as frp does
        self.assertEqual(len(self.pool), 0)

    def test_waiters_are_served_in_order(self):
        first, second = self.pool.get(), self.pool.get()
        a, b = workConn(), workConn()
        self.pool.put(a)
        self.pool.put(b)
        self.assertIs(self.successResultOf(first), a)
        self.assertIs(self.successResultOf(second), b)

    def test_timeout(self):
        d = self.pool.get()
        self.clock.advance(10)
        self.assertEqual(str(self.failureResultOf(d, NoWorkConnection).value), "timeout trying to get work connection")
        self.assertEqual(self.pool.waiting, 0)
        self.pool.put(workConn())
        self.assertEqual(len(self.pool), 1)

    def test_cancel_withdraws_the_request(self):
        d = self.pool.get()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.pool.waiting, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closed_idle_connections_are_skipped(self):
        dead, alive = workConn(), workConn()
        self.pool.put(dead)
        self.pool.put(alive)
        dead.connectionLost()
        self.assertIs(self.successResultOf(self.pool.get()), alive)

    def test_discard(self):
        conn = workConn()
        self.pool.put(conn)
        self.pool.discard(conn)
        self.pool.discard(conn)
        self.assertEqual(len(self.pool), 0)

    def test_close_fails_waiters_and_returns_idle(self):
        conn = workConn()
        self.pool.put(conn)
        self.assertEqual(self.pool.close(), [conn])
        waiter = WorkConnPool(1, 10, self.clock, self.request)
        d = waiter.get()
        self.assertEqual(waiter.close(), [])
        self.assertEqual(str(self.failureResultOf(d, NoWorkConnection).value), "control is already closed")
        self.failureResultOf(waiter.get(), NoWorkConnection)
        self.assertFalse(waiter.put(workConn()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
