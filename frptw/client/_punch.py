"""One hole-punching run, as frp's ``MakeHole`` does it (wire-protocol.md §9.4 step 6).

Theory of operation.  frps's ``NatHoleResp`` gives this peer a *role* and its parameters:

``sending``
    a *sender* first waits ``send_delay_ms``, then sends one probe to every assisted and
    candidate address of the peer; a *receiver* sends one to each candidate address (unless it
    is told to guess ports), with IP TTL ``ttl`` when set so that its probes open its own NAT
    but die on the way; with ``listen_random_ports`` it sends from that many extra sockets
    too.  With ``candidate_ports`` every port of the ranges is probed on each candidate IP, 2 ms
    apart, from every socket; with ``send_random_ports`` that many random ports are probed in
    the background, 15 ms apart.
``waiting``
    every socket waits up to ``read_timeout`` ms (5 s if 0) for a probe that decrypts with the
    ``sk`` key and carries our ``sid``.  A receiver answers the first such probe with the same
    message marked ``response`` (fresh IV) and is done; a sender ignores probes that are not
    responses.  The first socket to succeed wins and the others close.

A probe is IV + AES-CFB(sk) of a v1 ``NatHoleSid`` (:func:`frptw.wire.nathole.encode_probe`).
Datagrams that are not our probes are dropped; the first of each kind is logged.
"""

import random
from typing import List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from frptw.client._holesocket import Address, HoleSocket, openHoleSocket
from frptw.errors import FrpError
from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall
from frptw.wire.errors import ProtocolError
from frptw.wire.hostport import split_host_port
from frptw.wire.messages import NatHoleResp
from frptw.wire.nathole import compact, decode_probe, encode_probe, hosts_of, new_transaction_id

SENDER = "sender"
#: Spacing of probes to a port range and to random ports (frp's).
RANGE_SPACING = 0.002
RANDOM_SPACING = 0.015

_log = FrpLogger(namespace="frptw.client.nathole")


class PunchError(FrpError):
    """The hole could not be punched (frp's text)."""


def _address(text: str) -> Optional[Address]:
    try:
        return split_host_port(text)
    except ValueError:
        return None


class Punch:
    """One run of frp's punching for one peer; :meth:`run` fires with (socket, peer address)."""

    def __init__(self, reactor, hole: HoleSocket, resp: NatHoleResp, key: bytes, label: str) -> None:
        self._reactor = reactor
        self._resp = resp
        self._behavior = resp.detect_behavior
        self._key = key
        self._label = label
        self._tid = new_transaction_id(reactor.seconds())
        self._sockets: List[HoleSocket] = [hole]
        self._timers: List[IDelayedCall] = []
        self._done: Deferred = Deferred()
        self._dropped = set()

    def run(self) -> "Deferred[Tuple[HoleSocket, Address]]":
        behavior = self._behavior
        if behavior.role == SENDER and behavior.send_delay_ms > 0:
            self._later(behavior.send_delay_ms / 1000.0, self._send)
        else:
            self._send()
        return self._done

    # -- sending -------------------------------------------------------------------------------
    def _later(self, delay: float, f, *args) -> None:
        self._timers.append(self._reactor.callLater(delay, f, *args))

    def _probe(self, sock: HoleSocket, addr: Address) -> None:
        sock.send(encode_probe(self._key, self._tid, self._resp.sid, False, random.randrange(20)), addr,
                  self._behavior.ttl)

    def _send(self) -> None:
        behavior, resp = self._behavior, self._resp
        if behavior.role == SENDER:
            targets = list(resp.assisted_addrs) + list(resp.candidate_addrs)
        else:
            targets = [] if behavior.candidate_ports else list(resp.candidate_addrs)
            for _ in range(behavior.listen_random_ports):
                try:
                    self._sockets.append(openHoleSocket(self._reactor))
                except OSError as e:
                    _log.warn("{label} listen random udp addr error: {error}", label=self._label, error=e)
                    break
        for sock in self._sockets:
            sock.handler = lambda data, addr, sock=sock: self._received(sock, data, addr)
        for text in compact(targets):
            addr = _address(text)
            if addr is not None:
                for sock in self._sockets:
                    self._probe(sock, addr)
        ips = compact(hosts_of(resp.candidate_addrs))
        if behavior.send_random_ports > 0:
            for sock in self._sockets:
                self._randomPorts(sock, ips, behavior.send_random_ports, set())
        sweep = [(sock, (ip, port)) for sock in self._sockets for ip in ips
                 for r in behavior.candidate_ports for port in range(r.from_, r.to + 1)]
        self._sweep(sweep, 0)

    def _sweep(self, probes: List[Tuple[HoleSocket, Address]], index: int) -> None:
        """Probe the port ranges one by one, 2 ms apart, then start waiting (as frp does)."""
        if self._done.called:
            return
        if index < len(probes):
            self._probe(*probes[index])
            self._later(RANGE_SPACING, self._sweep, probes, index + 1)
            return
        timeout = (self._behavior.read_timeout or 5000) / 1000.0
        self._later(timeout, self._timedOut)

    def _randomPorts(self, sock: HoleSocket, ips: List[str], left: int, used: set) -> None:
        if self._done.called or left <= 0:
            return
        port = 0
        for _ in range(10):
            candidate = random.randrange(1024, 65535)
            if candidate not in used:
                used.add(candidate)
                port = candidate
                break
        if port:
            for ip in ips:
                self._probe(sock, (ip, port))
        self._later(RANDOM_SPACING * max(1, len(ips)), self._randomPorts, sock, ips, left - 1, used)

    # -- waiting -------------------------------------------------------------------------------
    def _drop(self, kind: str, text: str, **kw) -> None:
        if kind not in self._dropped:
            self._dropped.add(kind)
            _log.warn(text, label=self._label, **kw)

    def _received(self, sock: HoleSocket, data: bytes, addr: Address) -> None:
        if self._done.called:
            return
        try:
            probe = decode_probe(self._key, data)
        except ProtocolError as e:
            self._drop("garbage", "{label} dropping a datagram from {addr} that is not a probe: {error}",
                       addr=f"{addr[0]}:{addr[1]}", error=e)
            return
        if probe.sid != self._resp.sid:
            self._drop("sid", "{label} get sid message with wrong sid: {sid}, expect: {expect}", sid=probe.sid,
                       expect=self._resp.sid)
            return
        if not probe.response:
            if self._behavior.role == SENDER:
                return
            sock.send(encode_probe(self._key, probe.transaction_id, probe.sid, True, len(probe.nonce)), addr)
        self._finish()
        for other in self._sockets:
            if other is not sock:
                other.close()
        sock.handler = None
        self._done.callback((sock, addr))

    def _timedOut(self) -> None:
        self._finish()
        for sock in self._sockets[1:]:
            sock.close()
        self._sockets[0].handler = None
        self._done.errback(PunchError("wait detect message timeout"))

    def _finish(self) -> None:
        for timer in self._timers:
            cancelCall(timer)
        self._timers.clear()

    def cancel(self) -> None:
        """Give up (the visitor or proxy stopped)."""
        if not self._done.called:
            self._timedOut()
