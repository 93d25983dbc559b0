"""The HTTP exchange state machine, one exchange against fakes, and the work-connection pool."""

from typing import List, Optional

import h11
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import NoWorkConnection
from frptw.transport.http_exchange import (
    FINAL,
    TRANSITIONS,
    Backend,
    Exchange,
    ExchangeState,
    InvalidTransition,
    Step,
    Valve,
    advance,
)
from frptw.transport.http_pool import BackendPool

S = ExchangeState


class TransitionTests(SynchronousTestCase):
    def test_final_states_are_final(self) -> None:
        for (state, _step) in TRANSITIONS:
            self.assertNotIn(state, FINAL)

    def test_every_state_is_reachable_and_can_end(self) -> None:
        reachable = {S.ACQUIRING}
        frontier = [S.ACQUIRING]
        while frontier:
            state = frontier.pop()
            for (source, _step), target in TRANSITIONS.items():
                if source is state and target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        self.assertEqual(reachable, set(S))
        for state in set(S) - FINAL:
            self.assertEqual(advance(state, Step.FAIL), S.FAILED)

    def test_request_and_response_in_either_order(self) -> None:
        orders = [
            [Step.LENT, Step.REQUEST_END, Step.RESPONSE_HEAD, Step.RESPONSE_END],
            [Step.LENT, Step.RESPONSE_HEAD, Step.REQUEST_END, Step.RESPONSE_END],
            [Step.LENT, Step.RESPONSE_HEAD, Step.RESPONSE_END, Step.REQUEST_END],
        ]
        for steps in orders:
            state = S.ACQUIRING
            for step in steps:
                state = advance(state, step)
            self.assertIs(state, S.COMPLETE, steps)

    def test_invalid_steps_raise(self) -> None:
        with self.assertRaises(InvalidTransition):
            advance(S.ACQUIRING, Step.RESPONSE_HEAD)
        with self.assertRaises(InvalidTransition):
            advance(S.COMPLETE, Step.FAIL)
        with self.assertRaises(InvalidTransition):
            advance(S.RECEIVING, Step.SWITCH)


class FakeUser:
    """The user side of an exchange: an h11 server connection that got one request."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.valve = Valve(self.transport)
        self.h11 = h11.Connection(h11.SERVER)
        self.h11.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.h11.next_event()
        self.moves: List[ExchangeState] = []
        self.exchange: Optional[Exchange] = None

    def writeResponse(self, event) -> None:
        self.transport.write(self.h11.send(event))

    def exchangeMoved(self) -> None:
        self.moves.append(self.exchange.state)


class FakePool:
    def __init__(self, backend: "Optional[Backend]" = None) -> None:
        self.lend: Deferred = succeed(backend) if backend is not None else Deferred()
        self.released: List[Backend] = []
        self.forgotten: List[Backend] = []

    def acquire(self, src) -> Deferred:
        return self.lend

    def release(self, backend: Backend) -> None:
        self.released.append(backend)

    def forget(self, backend: Backend) -> None:
        self.forgotten.append(backend)


def makeBackend(clock: Clock) -> Backend:
    backend = Backend(clock, "web")
    backend.makeConnection(StringTransport())
    return backend


REQUEST = h11.Request(method=b"POST", target=b"/", headers=[(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")])


class ExchangeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.user = FakeUser()

    def exchange(self, pool: FakePool, timeout: float = 60.0, request: h11.Request = REQUEST) -> Exchange:
        exchange = Exchange(self.user, pool, "web", request, False, {"X-Resp": "1"}, timeout)
        self.user.exchange = exchange
        exchange.start(None)
        return exchange

    def test_lent_at_once_is_not_reported(self) -> None:
        backend = makeBackend(self.clock)
        exchange = self.exchange(FakePool(backend))
        self.assertIs(exchange.state, S.SENDING)
        self.assertTrue(exchange.forwarding)
        self.assertEqual(self.user.moves, [])
        self.assertIs(backend.exchange, exchange)
        self.assertTrue(backend.transport.value().startswith(b"POST / HTTP/1.1\r\n"))

    def test_lent_later_is_reported(self) -> None:
        pool = FakePool()
        exchange = self.exchange(pool)
        self.assertIs(exchange.state, S.ACQUIRING)
        self.assertFalse(exchange.forwarding)
        pool.lend.callback(makeBackend(self.clock))
        self.assertEqual(self.user.moves, [S.SENDING])

    def test_abandoned_while_acquiring_cancels_quietly(self) -> None:
        pool = FakePool()
        exchange = self.exchange(pool)
        exchange.abandon()
        self.assertIs(exchange.state, S.FAILED)
        self.assertTrue(pool.lend.called)  # cancelled
        self.assertEqual(self.user.moves, [])

    def test_refused_later_answers_404(self) -> None:
        pool = FakePool()
        exchange = self.exchange(pool)
        pool.lend.errback(NoWorkConnection("closed"))
        self.assertEqual((exchange.state, exchange.answer, self.user.moves), (S.FAILED, 404, [S.FAILED]))

    def test_early_response_then_request_end(self) -> None:
        backend = makeBackend(self.clock)
        pool = FakePool(backend)
        exchange = self.exchange(pool)
        exchange.requestData(b"abc")
        backend.dataReceived(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        self.assertIs(exchange.state, S.FINISHING_REQUEST)
        self.assertTrue(exchange.forwarding)
        self.assertIn(b"X-Resp: 1", self.user.transport.value())
        exchange.requestEnd()
        self.assertIs(exchange.state, S.COMPLETE)
        self.assertEqual(pool.released, [backend])
        self.assertIsNone(backend.exchange)
        self.assertTrue(backend.reusable())
        # completed by the user's own call: the user looks at the state, no report
        self.assertEqual(self.user.moves, [])

    def test_response_timer_runs_only_awaiting_the_head(self) -> None:
        backend = makeBackend(self.clock)
        exchange = self.exchange(FakePool(backend), timeout=5)
        self.clock.advance(10)
        self.assertIs(exchange.state, S.SENDING)  # the body is not complete: no timer yet
        exchange.requestEnd()
        self.assertIs(exchange.state, S.AWAITING_RESPONSE)
        self.clock.advance(5)
        self.assertEqual((exchange.state, exchange.answer), (S.FAILED, 504))
        self.assertEqual(self.user.moves, [S.FAILED])
        self.assertTrue(backend.transport.disconnecting)

    def test_break_after_the_response_head_aborts_the_user(self) -> None:
        backend = makeBackend(self.clock)
        exchange = self.exchange(FakePool(backend))
        exchange.requestEnd()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.assertIs(exchange.state, S.RECEIVING)
        backend.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((exchange.state, exchange.answer), (S.FAILED, None))

    def test_http10_response_reaches_the_user_as_http11(self) -> None:
        """A backend answering HTTP/1.0 with its body ended by the close (Python's
        http.server): the user gets an HTTP/1.1 head and the whole body, as from Go's frps."""
        backend = makeBackend(self.clock)
        exchange = Exchange(self.user, FakePool(backend), "web", REQUEST, False, {}, 60.0)  # head relayed as is
        self.user.exchange = exchange
        exchange.start(None)
        exchange.requestEnd()
        backend.dataReceived(b"HTTP/1.0 200 OK\r\nServer: py\r\n\r\nhello ")
        backend.dataReceived(b"world")
        backend.connectionLost(Failure(ConnectionDone()))
        self.assertIs(exchange.state, S.COMPLETE)
        sent = self.user.transport.value()
        self.assertTrue(sent.startswith(b"HTTP/1.1 200 OK\r\n"), sent)
        self.assertIn(b"Server: py", sent)
        self.assertTrue(sent.endswith(b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"), sent)

    def test_break_before_the_response_answers_404(self) -> None:
        backend = makeBackend(self.clock)
        exchange = self.exchange(FakePool(backend))
        backend.dataReceived(b"garbage\r\n\r\n")
        self.assertEqual((exchange.state, exchange.answer), (S.FAILED, 404))

    def test_connect_switches_at_once(self) -> None:
        backend = makeBackend(self.clock)
        pool = FakePool(backend)
        self.user.h11 = h11.Connection(h11.SERVER)
        exchange = self.exchange(pool, request=h11.Request(method=b"CONNECT", target=b"a:443",
                                                           headers=[(b"Host", b"a:443")]))
        self.assertIs(exchange.state, S.SWITCHED)
        self.assertEqual((exchange.backend, exchange.backendLeftover, pool.forgotten), (backend, b"", [backend]))
        self.assertIsNone(backend.exchange)

    def test_backpressure_wired_while_lent(self) -> None:
        backend = makeBackend(self.clock)
        exchange = self.exchange(FakePool(backend))
        self.assertIs(backend.transport.producer, self.user.valve)
        self.assertIs(self.user.transport.producer, backend.valve)
        exchange.abandon()
        self.assertIsNone(backend.transport.producer)
        self.assertIsNone(self.user.transport.producer)


class PoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.dials: List[Deferred] = []
        self.pool = BackendPool(self.clock, self.dial, maxIdle=2, idleTimeout=10)

    def dial(self, src) -> Deferred:
        d: Deferred = Deferred()
        self.dials.append(d)
        return d

    def finished(self) -> Backend:
        """A backend that completed one exchange (reusable)."""
        backend = makeBackend(self.clock)
        backend.h11.send(h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"a")]))
        backend.h11.send(h11.EndOfMessage())
        backend.h11.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
        while type(backend.h11.next_event()) is not h11.EndOfMessage:
            pass
        return backend

    def test_lends_the_most_recent_idle(self) -> None:
        first, second = self.finished(), self.finished()
        self.pool.release(first)
        self.clock.advance(1)
        self.pool.release(second)
        self.assertIs(self.successResultOf(self.pool.acquire(None)), second)
        self.assertEqual(self.dials, [])

    def test_idle_expire_oldest_first_with_one_timer(self) -> None:
        first, second = self.finished(), self.finished()
        self.pool.release(first)
        self.clock.advance(4)
        self.pool.release(second)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(6)
        self.assertEqual((first.transport.disconnecting, second.transport.disconnecting, self.pool.idle),
                         (True, False, 1))
        self.clock.advance(4)
        self.assertEqual((second.transport.disconnecting, self.pool.idle), (True, 0))

    def test_at_most_max_idle_and_gone_ones_make_room(self) -> None:
        backends = [self.finished() for _ in range(3)]
        for backend in backends:
            self.pool.release(backend)
        self.assertEqual([b.transport.disconnecting for b in backends], [False, False, True])
        backends[0].gone = True
        extra = self.finished()
        self.pool.release(extra)
        self.assertEqual((extra.transport.disconnecting, self.pool.idle), (False, 2))

    def test_the_recent_peak_of_lent_connections_stays_idle(self) -> None:
        """Under load released connections stay for the next requests instead of being closed
        and dialled again; once one stayed unused for idleTimeout, at most maxIdle are kept."""
        waiting = [self.pool.acquire(None) for _ in range(4)]
        backends = [self.finished() for _ in range(4)]
        for dial, backend in zip(self.dials, backends):
            dial.callback(backend)
        self.assertEqual([self.successResultOf(d) for d in waiting], backends)
        for backend in backends:
            self.pool.release(backend)
        self.assertEqual(([b.transport.disconnecting for b in backends], self.pool.idle), ([False] * 4, 4))
        self.clock.advance(10)
        self.assertEqual(self.pool.idle, 0)
        more = [self.finished() for _ in range(3)]
        for backend in more:
            self.pool.release(backend)
        self.assertEqual([b.transport.disconnecting for b in more], [False, False, True])

    def test_not_reusable_is_closed(self) -> None:
        backend = makeBackend(self.clock)
        self.pool.release(backend)
        self.assertTrue(backend.transport.disconnecting)
        self.assertEqual(self.pool.idle, 0)

    def test_queue_and_close(self) -> None:
        waiting = self.pool.acquire(None)
        self.assertEqual(len(self.dials), 1)
        self.pool.close()
        self.failureResultOf(waiting, NoWorkConnection)
        self.failureResultOf(self.pool.acquire(None), NoWorkConnection)
