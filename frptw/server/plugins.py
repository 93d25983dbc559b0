"""frps's server plugins on Twisted: HTTP calls to the configured plugins, chained per operation.

:class:`PluginManager` holds the ``[[httpPlugins]]`` of the configuration (INI
``[plugin.NAME]``) and offers one Deferred-returning method per operation frp 0.65 hooks:
``login``, ``newProxy``, ``closeProxy``, ``ping``, ``newWorkConn`` and ``newUserConn``.  The
plugins registered for an operation (``ops``) are asked one after another in configuration
order (:mod:`frptw.server.plugin_rpc` says what each answer means); the Deferred fires with the
content after the last one, or fails with :class:`~frptw.errors.PluginRejected` carrying frp's
text: the ``reject_reason`` of the plugin that rejected, or ``send <Op> request to plugin
error`` when a plugin could not be asked (refused connection, timeout, status other than 200,
a reply that does not decode), which is also logged once, naming the plugin and the cause.
CloseProxy is a notification: its answer is ignored and a failure only logged.

Each call is one HTTP request (:mod:`frptw.server.plugin_http`).  frp's client has no timeout
of its own beyond Go's 30 s dial timeout, so a plugin that never answers stalls that operation in
frp for ever; frptw bounds each call by :data:`CALL_TIMEOUT` (connecting included) and then
fails it like a refused connection, so a stalled plugin costs an operation, never a hang.

Callers that find no plugin for an operation (:meth:`PluginManager.handles`) skip the call
and stay synchronous, so frps without plugins behaves exactly as before.
"""

import secrets
from typing import Any, Dict, List, Optional, Sequence, Set

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from frptw.errors import PluginRejected
from frptw.logs import FrpLogger
from frptw.server import plugin_rpc as rpc
from frptw.wire import messages as m

#: Seconds one plugin call may take, connecting included (frp sets no limit: see above).
CALL_TIMEOUT = 30.0

log = FrpLogger()


class PluginManager:
    """The configured server plugins, asked per operation in configuration order.

    :param plugins: the ``http_plugins`` of a :class:`frptw.config.ServerConfig`.
    :param reactor: what the HTTP client connects with.
    :param clock: the clock of the call timeouts (the reactor by default).
    """

    def __init__(self, plugins: Sequence[Any], reactor, clock: Optional[IReactorTime] = None,
                 timeout: float = CALL_TIMEOUT) -> None:
        clock = reactor if clock is None else clock
        self._client = None
        self._plugins: List[Any] = []
        if plugins:
            # Only now: frps without plugins never loads twisted.web.
            from frptw.server.plugin_http import PluginClient

            self._client = PluginClient(reactor, clock, timeout)
            self._plugins = [self._client.plugin(options) for options in plugins]
        self._inFlight: Set[Deferred] = set()
        for plugin in self._plugins:
            log.info("plugin [{name}] has been registered", name=plugin.name)

    def handles(self, op: str) -> bool:
        """True if some plugin takes ``op`` (one of :data:`~frptw.server.plugin_rpc.OPS`)."""
        return any(op in plugin.ops for plugin in self._plugins)

    # -- the operations ------------------------------------------------------------------------
    def login(self, login: m.Login, clientAddress: str) -> "Deferred[m.Login]":
        """The Login to go on with (before frps checks its token)."""
        d = self._chain(rpc.LOGIN, rpc.LoginContent(login, clientAddress))
        return d.addCallback(lambda content: content.login)

    def newProxy(self, user: rpc.UserInfo, request: m.NewProxy) -> "Deferred[m.NewProxy]":
        """The NewProxy to register (before frps checks it)."""
        return self._message(rpc.NEW_PROXY, user, request)

    def ping(self, user: rpc.UserInfo, ping: m.Ping) -> "Deferred[m.Ping]":
        """The Ping to check (before its token, if the heartbeat scope is on)."""
        return self._message(rpc.PING, user, ping)

    def newWorkConn(self, user: rpc.UserInfo, request: m.NewWorkConn) -> "Deferred[m.NewWorkConn]":
        """The NewWorkConn to check, for the client it named."""
        return self._message(rpc.NEW_WORK_CONN, user, request)

    def newUserConn(self, user: rpc.UserInfo, proxyName: str, proxyType: str, remoteAddr: str) -> "Deferred[None]":
        """Fires if the user connection may go on (only a rejection matters here)."""
        d = self._chain(rpc.NEW_USER_CONN, rpc.UserConnContent(user, proxyName, proxyType, remoteAddr))
        return d.addCallback(lambda _: None)

    def closeProxy(self, user: rpc.UserInfo, proxyName: str) -> None:
        """Tell the plugins a proxy closed; their answers are ignored, failures logged."""
        if not self.handles(rpc.CLOSE_PROXY):
            return
        d = self._chain(rpc.CLOSE_PROXY, rpc.MessageContent(user, m.CloseProxy(proxy_name=proxyName)), notify=True)
        d.addErrback(lambda f: f.trap(PluginRejected, CancelledError))

    def close(self) -> "Deferred[None]":
        """Cancel the calls under way and close the idle connections to the plugins."""
        for d in list(self._inFlight):
            d.cancel()
        return succeed(None) if self._client is None else self._client.close()

    # -- the chain -----------------------------------------------------------------------------
    def _message(self, op: str, user: rpc.UserInfo, message):
        d = self._chain(op, rpc.MessageContent(user, message))
        return d.addCallback(lambda content: content.message)

    def _chain(self, op: str, content: rpc.Content, notify: bool = False) -> Deferred:
        d = Deferred.fromCoroutine(self._ask(op, content, notify))
        self._inFlight.add(d)
        d.addBoth(self._finished, d)
        return d

    def _finished(self, result: object, d: Deferred) -> object:
        self._inFlight.discard(d)
        return result

    async def _ask(self, op: str, content: rpc.Content, notify: bool) -> rpc.Content:
        reqid = secrets.token_hex(8)
        errors: Dict[str, str] = {}
        for plugin in self._plugins:
            if op not in plugin.ops:
                continue
            try:
                reply = await plugin.call(op, content, reqid)
                changed = rpc.apply_reply(content, reply)
            except Exception:
                failure = Failure()
                if self._client.cancelled(failure):
                    raise CancelledError() from None  # withdrawn (the user left, frps stops): no error
                error = self._client.describe(failure)
                if not self._client.expected(failure):
                    log.failure("[reqid: {reqid}] asking plugin [{name}] for {op}", failure, reqid=reqid,
                                name=plugin.name, op=op)  # a bug of frptw: keep its traceback
                # frp logs a failed NewUserConn call at info level, every other one as a warning.
                emit = log.info if op == rpc.NEW_USER_CONN else log.warn
                emit("[reqid: {reqid}] send {op} request to plugin [{name}] error: {error}", reqid=reqid, op=op,
                     name=plugin.name, error=error)
                if notify:
                    errors[plugin.name] = error
                    continue
                raise PluginRejected(f"send {op} request to plugin error") from None
            if notify:
                continue
            if changed is None:
                raise PluginRejected(reply.reject_reason)
            content = changed
        return content
