"""frpc's control connection on Twisted: carries out what :class:`ControlMachine` decides.

Theory of operation
-------------------
:class:`ControlProtocol` runs on the control stream (a yamux stream, or the (TLS) connection
itself when tcp_mux is off).  It turns bytes into messages with
:class:`~frptw.client._channel.ControlChannel`, hands each message and the current time to the
sans-IO :class:`~frptw.client._control_machine.ControlMachine`, and performs the actions it gets
back: the ``Send`` actions of one batch become one write (so registering N proxies after login
is one write of N ``NewProxy``), status changes go into the service's
:class:`~frptw.client._proxies.ProxyTable`, work connections are opened through a callback, and
a single timer on the injected clock follows the machine's :meth:`deadline`.

:attr:`loggedIn` fires with the ``LoginResp``, or fails with
:class:`~frptw.errors.LoginError` (frps's text) or :class:`~frptw.errors.ConnectionClosed`;
:attr:`ended` fires once the connection is gone, with the reason in :attr:`endReason`.
"""

from typing import Callable, List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from frptw.client._channel import ControlChannel
from frptw.client._control_machine import (
    Action,
    Close,
    ControlMachine,
    ControlState,
    Fail,
    LoggedIn,
    NatHoleAnswer,
    OpenWorkConn,
    ProxyUpdate,
    Send,
)
from frptw.client._proxies import RUNNING, START_ERROR, ProxyTable
from frptw.config import ClientConfig
from frptw.errors import ConnectionClosed, LoginError
from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import Message, NatHoleResp, NewWorkConn


class ControlProtocol(Protocol):
    """The control connection's protocol.

    :param config: the ClientConfig.
    :param proxies: the service's proxy table (outlives the session); its registrable proxies are
        registered at login, and :meth:`registerProxy` adds later ones.
    :param clock: time source for the Login timestamp, timeouts and heartbeats.
    :param runId: the run id of the previous session ("" the first time).
    :param openWork: called with the ``NewWorkConn`` to send on each new work connection.
    :param sign: the proof of identity for Login, Ping and NewWorkConn (see ControlMachine).
    :param natHole: called with each ``NatHoleResp`` (xtcp answers).
    """

    _log = FrpLogger(namespace="frptw.client.control")

    def __init__(
        self,
        config: ClientConfig,
        proxies: ProxyTable,
        clock: IReactorTime,
        runId: str,
        openWork: Callable[[NewWorkConn], None],
        sign: Optional[Callable[[float], dict]] = None,
        natHole: Optional[Callable[[NatHoleResp], None]] = None,
    ) -> None:
        self.machine = ControlMachine(config, runId, sign)
        self.proxies = proxies
        self.clock = clock
        self._openWork = openWork
        self._natHole = natHole
        self._channel = ControlChannel(config.auth.token)
        self._timer: Optional[IDelayedCall] = None
        self._error: Optional[Exception] = None
        #: Fires with the LoginResp; fails with LoginError or ConnectionClosed.
        self.loggedIn: Deferred = Deferred()
        #: Fires (with None) once the connection is gone; the reason is then :attr:`endReason`.
        self.ended: Deferred = Deferred()
        self.endReason: Optional[Failure] = None

    @property
    def runId(self) -> str:
        return self.machine.runId

    @property
    def state(self) -> ControlState:
        return self.machine.state

    # -- connection events -------------------------------------------------------------------
    def connectionMade(self) -> None:
        now = self.clock.seconds()
        for entry in self.proxies:
            if entry.registrable:
                self.machine.addProxy(entry.config.name, self.proxies.newProxy(entry.config.name), now)
        self._perform(self.machine.start(now))

    def dataReceived(self, data: bytes) -> None:
        machine = self.machine
        if machine.state is ControlState.CLOSED:
            return
        try:
            self._channel.receive_data(data)
            while machine.state is not ControlState.CLOSED:
                msg = self._channel.next_message()
                if msg is None:
                    break
                self._perform(machine.messageReceived(msg, self.clock.seconds()))
        except ProtocolError as e:
            self._perform(machine.badData(e))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.machine.connectionLost()
        self._schedule()
        self.proxies.sessionEnded()
        if self._error is not None:
            reason = Failure(self._error)
        if not self.loggedIn.called:
            if isinstance(reason.value, LoginError):
                self.loggedIn.errback(reason)
            else:
                self.loggedIn.errback(ConnectionClosed(f"control connection closed during login: {reason.value}"))
        else:
            self._log.info("control session with frps ended: {reason}", reason=reason.value)
        self.endReason = reason
        self.ended.callback(None)

    # -- the service's requests -----------------------------------------------------------------
    def registerProxy(self, name: str) -> None:
        """Register a proxy just added to the table or just found healthy (at once when logged
        in, else at login)."""
        if self.proxies.get(name).registrable:
            self._perform(self.machine.addProxy(name, self.proxies.newProxy(name), self.clock.seconds()))

    def unregisterProxy(self, name: str) -> None:
        """Tell frps a proxy removed from the table (or found unhealthy) is gone (if frps knows it)."""
        self._perform(self.machine.removeProxy(name))

    def sendMessage(self, message: Message) -> None:
        """Send one more message (xtcp's NatHole*); ConnectionClosed unless logged in."""
        if self.machine.state is not ControlState.RUNNING:
            raise ConnectionClosed("not logged in to frps")
        self.transport.write(self._channel.encode([message]))

    def close(self) -> None:
        """Graceful end: CloseProxy for every proxy frps knows, then close the connection."""
        self._perform(self.machine.close())

    # -- actions ------------------------------------------------------------------------------
    def _perform(self, actions: List[Action]) -> None:
        """Write the batch's messages at once, then carry out the other actions in order."""
        messages = [action.message for action in actions if isinstance(action, Send)]
        if messages:
            self.transport.write(self._channel.encode(messages))
        for action in actions:
            if isinstance(action, OpenWorkConn):
                self._openWork(action.hello)
            elif isinstance(action, ProxyUpdate):
                self._proxyUpdated(action)
            elif isinstance(action, LoggedIn):
                self._log.info("login to server success, get run id [{runId}]", runId=self.runId)  # frp's words
                self.loggedIn.callback(action.response)
            elif isinstance(action, Fail):
                self._failed(action.error)
            elif isinstance(action, Close):
                self.transport.loseConnection()
            elif isinstance(action, NatHoleAnswer) and self._natHole is not None:
                self._natHole(action.message)
        self._schedule()

    def _proxyUpdated(self, update: ProxyUpdate) -> None:
        entry = self.proxies.find(update.name)
        if entry is None:
            return
        entry.update(update.state, error=update.error, remote_addr=update.remote_addr)
        if update.state == RUNNING:
            self._log.info("[{name}] start proxy success, remote address [{addr}]", name=update.name, addr=update.remote_addr)
        elif update.state == START_ERROR:
            self._log.warn("[{name}] start error: {error}", name=update.name, error=update.error)
        else:
            return
        entry.settle()

    def _failed(self, error: Exception) -> None:
        self._error = error
        if isinstance(error, LoginError):
            self._log.error("login to frps failed: {error}", error=error)
        elif self.loggedIn.called:  # a failed login attempt is logged once, by the service
            self._log.warn("closing control connection: {error}", error=error)
        self.transport.abortConnection()

    # -- time ---------------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Keep the one timer on the machine's deadline."""
        when = self.machine.deadline()
        timer = self._timer
        if timer is not None and timer.active() and timer.getTime() == when:
            return
        cancelCall(timer)
        self._timer = None
        if when is not None:
            self._timer = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._perform(self.machine.tick(self.clock.seconds()))
