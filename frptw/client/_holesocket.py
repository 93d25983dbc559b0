"""The UDP socket of one xtcp hole-punching run, and STUN discovery on it (wire-protocol.md §9.4).

frp discovers its public mapping from a fresh UDP socket, then punches from the same local port
and finally runs QUIC over it.  Go closes and re-binds the port between the steps; here one
:class:`HoleSocket` lives through all of them and hands its datagrams to whichever step owns
it now (:attr:`HoleSocket.handler`), so the NAT mapping learnt by STUN is the one punched and
the one the tunnel uses.

:func:`discover` is frp's ``Discover``: a Binding Request to the configured server (3 s
timeout), then one from the same socket to the server's OTHER-ADDRESS; the two mapped
addresses.  Unlike frp, which takes whatever datagram comes next, an answer must be a STUN
success response with our transaction id; anything else is dropped (logged once per
discovery), so stray or forged datagrams cannot poison the result.
"""

import ipaddress
import socket
import struct
from typing import Callable, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.error import TimeoutError as DeferredTimeout
from twisted.internet.protocol import DatagramProtocol

from frptw.errors import FrpError
from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall
from frptw.wire import stun
from frptw.wire.errors import ProtocolError
from frptw.wire.hostport import join_host_port, split_host_port

Address = Tuple[str, int]
#: Receives ``(datagram, source address)``.
Handler = Callable[[bytes, Address], None]

#: frp's STUN response timeout.
STUN_TIMEOUT = 3.0

_log = FrpLogger(namespace="frptw.client.nathole")


class DiscoveryError(FrpError):
    """STUN discovery failed (frp's text)."""


class HoleSocket(DatagramProtocol):
    """A UDP socket whose datagrams go to the current :attr:`handler`."""

    noisy = False

    def __init__(self) -> None:
        self.handler: Optional[Handler] = None

    def datagramReceived(self, data: bytes, addr) -> None:
        if self.handler is not None:
            self.handler(data, (addr[0], addr[1]))

    @property
    def localPort(self) -> int:
        return self.transport.getHost().port

    def send(self, data: bytes, addr: Address, ttl: int = 0) -> None:
        """Send one datagram; with ``ttl > 0`` only this one leaves with that IP TTL (frp's
        low-TTL probes).  Send errors (ICMP, full buffer) are ignored, as frp ignores them."""
        if self.transport is None:
            return
        sock = self.transport.getHandle()
        original = None
        if ttl > 0:
            original = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        try:
            self.transport.write(data, addr)
        except OSError:
            pass
        finally:
            if original is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, original)

    def close(self) -> None:
        self.handler = None
        if self.transport is not None:
            self.transport.stopListening()


def openHoleSocket(reactor, port: int = 0, interface: str = "0.0.0.0") -> HoleSocket:
    """A new IPv4 :class:`HoleSocket` (frp punches over IPv4 only)."""
    hole = HoleSocket()
    reactor.listenUDP(port, hole, interface=interface)
    return hole


class _Request:
    """One Binding Request waiting for its answer."""

    def __init__(self, hole: HoleSocket, clock, server: Address) -> None:
        self.request = stun.binding_request()
        self.done: Deferred = Deferred()
        self._garbage = 0
        hole.handler = self._received
        hole.send(stun.encode(self.request), server)
        self._timer = clock.callLater(STUN_TIMEOUT, self._expired)

    def _received(self, data: bytes, addr: Address) -> None:
        try:
            answer = stun.decode(data)
        except ProtocolError as e:
            answer, error = None, str(e)
        else:
            error = "not the answer to our request"
        if answer is None or answer.type != stun.BINDING_SUCCESS or \
                answer.transaction_id != self.request.transaction_id:
            self._garbage += 1
            if self._garbage == 1:
                _log.warn("dropping a datagram from {addr} during STUN discovery: {error}",
                          addr=join_host_port(*addr), error=error)
            return
        cancelCall(self._timer)
        self.done.callback(answer)

    def _expired(self) -> None:
        self.done.errback(DiscoveryError("wait response from stun server timeout"))


async def _resolve(reactor, server: str) -> Address:
    try:
        host, port = split_host_port(server)
    except ValueError as e:
        raise DiscoveryError(str(e)) from None
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        host = await reactor.resolve(host)
    return host, port


async def discover(reactor, hole: HoleSocket, server: str) -> List[str]:
    """frp's discovery from ``hole``: its mapped addresses (two when the server names an
    alternate address), as ``ip:port`` strings.  Raises :class:`DiscoveryError`."""
    try:
        first = await _Request(hole, reactor, await _resolve(reactor, server)).done
        if first.mapped is None:
            raise DiscoveryError("no external address found")
        mapped = [join_host_port(*first.mapped)]
        if first.other is not None:
            second = await _Request(hole, reactor, first.other).done
            if second.mapped is not None:
                mapped.append(join_host_port(*second.mapped))
        return mapped
    except (DeferredTimeout, OSError) as e:
        raise DiscoveryError(str(e)) from None
    finally:
        hole.handler = None


def localIPsForNatHole(limit: int = 10) -> List[str]:
    """frp's ``ListLocalIPsForNatHole``: up to ``limit`` IPv4 addresses of this host that are
    neither loopback nor link-local."""
    ips: List[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return ips
    for name in names:
        for ip in _interfaceIPv4(name):
            address = ipaddress.IPv4Address(ip)
            if address.is_loopback or address.is_link_local or ip in ips:
                continue
            ips.append(ip)
            if len(ips) >= limit:
                return ips
    return ips


def _interfaceIPv4(name: str) -> List[str]:
    """The IPv4 address of interface ``name`` (SIOCGIFADDR: the primary one), if any."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no assisted addresses
        return []

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
        except OSError:
            return []
    return [socket.inet_ntoa(packed[20:24])]
