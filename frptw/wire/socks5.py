"""The server side of a SOCKS5 negotiation (RFC 1928, RFC 1929), as a sans-IO state machine.

frpc's ``socks5`` plugin runs armon/go-socks5 (the version frp 0.65 pins) on each work
connection; this machine answers every byte the way that server does:

* greeting ``05 n methods...``: a first byte other than 5 closes the connection without a
  reply.  The server offers exactly one method: username/password (``02``) when credentials
  are configured, else "no authentication" (``00``); a client that does not list it gets
  ``05 FF`` and the connection closes.
* username/password sub-negotiation ``01 ulen user plen pass``: another version closes without
  a reply; wrong credentials get ``01 01`` and a close, right ones ``01 00``.
* request ``05 cmd 00 atyp addr port``: a version other than 5 closes without a reply; an
  address type other than IPv4 (1), domain (3) or IPv6 (4) gets reply ``08``; a command other
  than CONNECT (BIND, UDP ASSOCIATE, ...) gets ``07``; CONNECT yields a :class:`Connect`
  event, and the caller answers with :func:`reply` (success with the local address of its
  outgoing connection, or the failure code).

Theory of operation.  :meth:`Socks5Server.receive_data` appends to a buffer and parses as far
as the bytes allow, returning events: :class:`Send` (bytes to write), :class:`Connect` (dial
this target; bytes past the request stay for :meth:`Socks5Server.take_unconsumed`) or
:class:`Close` (write what was returned, then close; ``reason`` is for the log line).  Every
stage has a fixed maximum size (a request is at most 262 bytes), so the machine never holds
more than one read beyond what it needs.
"""

import hmac
import ipaddress
from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Tuple, Union

VERSION = 5
AUTH_VERSION = 1
METHOD_NO_AUTH = 0x00
METHOD_USER_PASS = 0x02
METHOD_NONE_ACCEPTABLE = 0xFF
CMD_CONNECT = 1
ATYP_IPV4 = 1
ATYP_DOMAIN = 3
ATYP_IPV6 = 4

#: Reply codes (RFC 1928 §6).
SUCCEEDED = 0
GENERAL_FAILURE = 1
NETWORK_UNREACHABLE = 3
HOST_UNREACHABLE = 4
CONNECTION_REFUSED = 5
COMMAND_NOT_SUPPORTED = 7
ADDRESS_TYPE_NOT_SUPPORTED = 8


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Connect:
    """CONNECT to ``host`` (an IP address literal, or a name when ``domain``) and ``port``."""

    host: str
    port: int
    domain: bool


@dataclass(frozen=True)
class Close:
    reason: str


Event = Union[Send, Connect, Close]


class Stage(Enum):
    GREETING = "greeting"
    AUTH = "authentication"
    REQUEST = "request"
    CONNECT = "connect requested"
    CLOSED = "closed"


def reply(code: int, host: Optional[str] = None, port: int = 0) -> bytes:
    """A reply ``05 code 00 atyp addr port``: the bound address ``host`` (IPv4 written as such
    even when v4-mapped, as Go does), or ``0.0.0.0:0`` when None."""
    if host is None:
        return bytes([VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([VERSION, code, 0, atyp]) + ip.packed + port.to_bytes(2, "big")


class Socks5Server:
    """One client's negotiation.  ``credentials`` is ``(username, password)`` (bytes) to require
    RFC 1929 authentication, or None for none (frp: when both options are empty)."""

    def __init__(self, credentials: Optional[Tuple[bytes, bytes]] = None) -> None:
        self._credentials = credentials
        self._buffer = b""
        self.stage = Stage.GREETING

    def receive_data(self, data: bytes) -> List[Event]:
        """Parse ``data``; must not be called again after a Connect or Close event."""
        if self.stage in (Stage.CONNECT, Stage.CLOSED):
            raise RuntimeError(f"SOCKS5 negotiation already {self.stage.value}")
        self._buffer += data
        events: List[Event] = []
        while self.stage not in (Stage.CONNECT, Stage.CLOSED):
            step = {Stage.GREETING: self._greeting, Stage.AUTH: self._auth, Stage.REQUEST: self._request}[self.stage]()
            if step is None:
                break
            events.extend(step)
        return events

    def take_unconsumed(self) -> bytes:
        """The bytes received after the request (the first payload of the tunnel)."""
        data, self._buffer = self._buffer, b""
        return data

    def _consume(self, count: int) -> bytes:
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _close(self, reason: str, answer: bytes = b"") -> List[Event]:
        self.stage = Stage.CLOSED
        return ([Send(answer)] if answer else []) + [Close(reason)]

    def _greeting(self) -> Optional[List[Event]]:
        buf = self._buffer
        if buf[:1] and buf[0] != VERSION:
            return self._close(f"unsupported SOCKS version {buf[0]}")
        if len(buf) < 2 or len(buf) < 2 + buf[1]:
            return None
        methods = self._consume(2 + buf[1])[2:]
        wanted = METHOD_NO_AUTH if self._credentials is None else METHOD_USER_PASS
        if wanted not in methods:
            return self._close("no acceptable authentication method", bytes([VERSION, METHOD_NONE_ACCEPTABLE]))
        self.stage = Stage.REQUEST if self._credentials is None else Stage.AUTH
        return [Send(bytes([VERSION, wanted]))]

    def _auth(self) -> Optional[List[Event]]:
        buf = self._buffer
        if len(buf) < 2:
            return None
        if buf[0] != AUTH_VERSION:
            return self._close(f"unsupported authentication version {buf[0]}")
        userEnd = 2 + buf[1]
        if len(buf) < userEnd + 1 or len(buf) < userEnd + 1 + buf[userEnd]:
            return None
        message = self._consume(userEnd + 1 + buf[userEnd])
        user, password = message[2:userEnd], message[userEnd + 1:]
        assert self._credentials is not None
        good = hmac.compare_digest(user, self._credentials[0]) & hmac.compare_digest(password, self._credentials[1])
        if not good:
            shown = user.decode("utf-8", "replace")
            return self._close(f"authentication failed for user {shown!r}", bytes([AUTH_VERSION, 1]))
        self.stage = Stage.REQUEST
        return [Send(bytes([AUTH_VERSION, 0]))]

    def _request(self) -> Optional[List[Event]]:
        buf = self._buffer
        if len(buf) < 3:
            return None
        if buf[0] != VERSION:
            return self._close(f"unsupported request version {buf[0]}")
        if len(buf) < 4:
            return None
        atyp = buf[3]
        if atyp == ATYP_IPV4:
            size = 4
        elif atyp == ATYP_IPV6:
            size = 16
        elif atyp == ATYP_DOMAIN:
            if len(buf) < 5:
                return None
            size = 1 + buf[4]
        else:
            return self._close(f"address type {atyp} not supported", reply(ADDRESS_TYPE_NOT_SUPPORTED))
        if len(buf) < 4 + size + 2:
            return None
        request = self._consume(4 + size + 2)
        command, address, port = request[1], request[4:4 + size], int.from_bytes(request[-2:], "big")
        if command != CMD_CONNECT:
            return self._close(f"command {command} not supported", reply(COMMAND_NOT_SUPPORTED))
        if atyp != ATYP_DOMAIN:
            self.stage = Stage.CONNECT
            return [Connect(str(ipaddress.ip_address(address)), port, False)]
        try:
            name = address[1:].decode("ascii")
        except UnicodeDecodeError:
            name = ""
        if not name:
            return self._close(f"cannot resolve {address[1:]!r}", reply(HOST_UNREACHABLE))
        self.stage = Stage.CONNECT
        return [Connect(name, port, True)]
