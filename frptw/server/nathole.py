"""frps's nat-hole controller: pairs xtcp visitors with proxy owners (wire-protocol.md §9.4).

frp's ``pkg/nathole/controller.go``, one instance per frps.  It knows every running xtcp proxy
(:meth:`NatHoleController.listen`), and for each ``NatHoleVisitor`` that passes the checks it
opens a *session*:

``waiting``
    a fresh ``sid`` is made, the owner is woken (the proxy writes ``StartWorkConn`` +
    ``NatHoleSid`` on one of the owner's work connections) and frps waits up to
    :data:`CLIENT_TIMEOUT` s for the owner's ``NatHoleClient`` with that sid.  On timeout the
    session is dropped silently, as frp does (the visitor times out on its own).
``answered``
    both NAT features are classified, :class:`~frptw.server.nathole_analysis.Analyzer` picks the
    behaviours and each peer gets its ``NatHoleResp`` (the *sender*'s 1 s late, so that the
    receiver's low-TTL probes have opened its NAT first).  The session stays for the owner's
    read timeout + 30 s so that its ``NatHoleReport`` can be scored, then is dropped.

Messages that name no session or proxy (forged or stale sids, unknown proxies) change nothing;
each gets one log line.  Nothing here is unbounded: sessions live at most ~85 s and a session
answers only the first ``NatHoleClient``.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from frptw.errors import ProxyError
from frptw.logs import FrpLogger
from frptw.server.nathole_analysis import SENDER, Analyzer, Behavior, analysis_key, candidate_ports
from frptw.transport.timers import cancelCall
from frptw.wire.auth import verify_privilege_key
from frptw.wire.messages import (
    Message,
    NatHoleClient,
    NatHoleDetectBehavior,
    NatHoleReport,
    NatHoleResp,
    NatHoleVisitor,
)
from frptw.wire.nathole import NatFeature, classify, compact, hosts_of, new_transaction_id

log = FrpLogger()

#: Seconds frps waits for the owner's NatHoleClient (frp's ``NatHoleTimeout``).
CLIENT_TIMEOUT = 10.0
#: The sender's NatHoleResp goes out this much later than the receiver's.
SENDER_DELAY = 1.0

#: Sends one message on a control connection (a no-op once that connection is gone).
Reply = Callable[[Message], None]


@dataclass
class _Listener:
    """A running xtcp proxy as the controller sees it."""

    name: str
    sk: str
    allow_users: List[str]
    owner_run_id: str
    wake: Callable[[str], None]


@dataclass
class _Session:
    sid: str
    visitor: NatHoleVisitor
    visitor_reply: Reply
    listener: _Listener
    client: Optional[NatHoleClient] = None
    key: str = ""
    mode: int = 0
    index: int = 0
    timers: List[IDelayedCall] = field(default_factory=list)


class NatHoleController:
    """Every xtcp proxy and hole-punching session of one frps."""

    def __init__(self, clock: IReactorTime, reserve_hours: int) -> None:
        self._clock = clock
        self.analyzer = Analyzer(reserve_hours * 3600.0)
        self._listeners: Dict[str, _Listener] = {}
        self.sessions: Dict[str, _Session] = {}

    # -- proxies -------------------------------------------------------------------------------
    def listen(self, name: str, sk: str, allow_users: List[str], owner_run_id: str,
               wake: Callable[[str], None]) -> None:
        """An xtcp proxy starts; ``wake(sid)`` will ask its owner to join session ``sid``."""
        if name in self._listeners:
            raise ProxyError(f"proxy [{name}] is repeated")
        self._listeners[name] = _Listener(name, sk, list(allow_users), owner_run_id, wake)

    def close(self, name: str) -> None:
        self._listeners.pop(name, None)

    # -- messages ------------------------------------------------------------------------------
    def handle_visitor(self, message: NatHoleVisitor, reply: Reply, visitor_user: str) -> None:
        listener = self._listeners.get(message.proxy_name)
        if message.pre_check:
            error = ""
            if listener is None:
                error = f"xtcp server for [{message.proxy_name}] doesn't exist"
            elif visitor_user not in listener.allow_users and "*" not in listener.allow_users:
                error = f"xtcp visitor user [{visitor_user}] not allowed for [{message.proxy_name}]"
            reply(NatHoleResp(transaction_id=message.transaction_id, error=error))
            return
        if listener is None:
            error = f"xtcp server for [{message.proxy_name}] doesn't exist"
        elif not verify_privilege_key(listener.sk, message.timestamp, message.sign_key):
            error = f"xtcp connection of [{message.proxy_name}] auth failed"
        else:
            error = ""
        if error:
            log.warn("handle visitorMsg error: {error}", error=error)
            reply(NatHoleResp(transaction_id=message.transaction_id, error=error))
            return
        sid = new_transaction_id(self._clock.seconds())
        session = _Session(sid, message, reply, listener)
        self.sessions[sid] = session
        session.timers.append(self._clock.callLater(CLIENT_TIMEOUT, self._clientTimeout, session))
        log.debug("handle visitor message, sid [{sid}], server name: {name}", sid=sid, name=message.proxy_name)
        listener.wake(sid)

    def _clientTimeout(self, session: _Session) -> None:
        log.debug("wait for NatHoleClient message timeout, sid [{sid}]", sid=session.sid)
        self._drop(session)

    def handle_client(self, message: NatHoleClient, reply: Reply, run_id: str) -> None:
        """The owner (the client whose run id is ``run_id``) joins a session."""
        session = self.sessions.get(message.sid)
        if session is None or session.client is not None:
            log.warn("[{run_id}] NatHoleClient for unknown sid [{sid}] ignored", run_id=run_id, sid=message.sid)
            return
        if run_id != session.listener.owner_run_id or message.proxy_name != session.listener.name:
            log.warn("[{run_id}] NatHoleClient for sid [{sid}] of proxy [{name}] from a client that does not own it "
                     "ignored", run_id=run_id, sid=message.sid, name=session.listener.name)
            return
        session.client = message
        for timer in session.timers:
            cancelCall(timer)
        session.timers.clear()
        visitor_resp, client_resp = self._answers(session)
        for resp, send in ((visitor_resp, session.visitor_reply), (client_resp, reply)):
            if resp.detect_behavior.role == SENDER:
                session.timers.append(self._clock.callLater(SENDER_DELAY, send, resp))
            else:
                send(resp)
        linger = client_resp.detect_behavior.read_timeout / 1000.0 + 30 + SENDER_DELAY
        session.timers.append(self._clock.callLater(linger, self._drop, session))

    def handle_report(self, message: NatHoleReport) -> None:
        session = self.sessions.get(message.sid)
        if session is None:
            log.debug("sid [{sid}] report make hole success: {ok}, but session not found", sid=message.sid,
                      ok=_go_bool(message.success))
            return
        if message.success:
            self.analyzer.report_success(session.key, session.mode, session.index, self._clock.seconds())
        log.info("sid [{sid}] report make hole success: {ok}, mode {mode}, index {index}", sid=message.sid,
                 ok=_go_bool(message.success), mode=session.mode, index=session.index)

    def clean(self) -> None:
        """Forget the score tables of pairs not seen for the reserve time (frps: hourly)."""
        count, total = self.analyzer.clean(self._clock.seconds())
        log.debug("clean {count}/{total} nathole analysis data", count=count, total=total)

    def stop(self) -> None:
        """frps stops: drop every session and its timers."""
        for session in list(self.sessions.values()):
            self._drop(session)

    # -- internals -----------------------------------------------------------------------------
    def _drop(self, session: _Session) -> None:
        for timer in session.timers:
            cancelCall(timer)
        session.timers.clear()
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def _answers(self, session: _Session) -> "tuple[NatHoleResp, NatHoleResp]":
        visitor, client = session.visitor, session.client
        assert client is not None
        try:
            c_feature = _classify("client", client.mapped_addrs, client.assisted_addrs)
            v_feature = _classify("visitor", visitor.mapped_addrs, visitor.assisted_addrs)
        except ValueError as e:
            log.debug("sid [{sid}] analysis error: {error}", sid=session.sid, error=e)
            return (NatHoleResp(transaction_id=visitor.transaction_id, error=str(e)),
                    NatHoleResp(transaction_id=client.transaction_id, error=str(e)))
        session.key = analysis_key(visitor.mapped_addrs, v_feature, client.mapped_addrs, c_feature)
        session.mode, session.index, c_beh, v_beh = self.analyzer.recommend(session.key, c_feature, v_feature,
                                                                             self._clock.seconds())
        timeout = max(c_beh.send_delay_ms, v_beh.send_delay_ms) + 5000
        if c_beh.listen_random_ports > 0 or v_beh.listen_random_ports > 0:
            timeout += 30000

        def answer(own: NatHoleVisitor | NatHoleClient, beh: Behavior, other: NatHoleVisitor | NatHoleClient,
                   other_feature: NatFeature) -> NatHoleResp:
            return NatHoleResp(
                transaction_id=own.transaction_id,
                sid=session.sid,
                protocol=visitor.protocol,
                candidate_addrs=compact(other.mapped_addrs),
                assisted_addrs=compact(other.assisted_addrs),
                detect_behavior=NatHoleDetectBehavior(
                    role=beh.role, mode=session.mode, ttl=beh.ttl, send_delay_ms=beh.send_delay_ms,
                    read_timeout=timeout - beh.send_delay_ms,
                    candidate_ports=candidate_ports(other.mapped_addrs, other_feature.ports_difference,
                                                    beh.ports_range_number),
                    send_random_ports=beh.ports_random_number, listen_random_ports=beh.listen_random_ports,
                ),
            )

        log.debug("sid [{sid}] visitor nat: {v}, candidateAddrs: {va}; client nat: {c}, candidateAddrs: {ca}, "
                  "protocol: {p}", sid=session.sid, v=v_feature, va=visitor.mapped_addrs, c=c_feature,
                  ca=client.mapped_addrs, p=visitor.protocol)
        return answer(visitor, v_beh, client, c_feature), answer(client, c_beh, visitor, v_feature)


def _classify(side: str, mapped: List[str], assisted: List[str]) -> NatFeature:
    try:
        return classify(mapped, hosts_of(assisted))
    except ValueError as e:
        raise ValueError(f"classify {side} nat feature error: {e}") from None


def _go_bool(value: bool) -> str:
    return "true" if value else "false"
