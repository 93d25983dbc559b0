"""The client side of the tunnels frpc opens through a forward proxy (``transport.proxyURL``), as
sans-IO state machines: HTTP ``CONNECT`` and SOCKS5.

frp 0.65 (golib ``net/dial_option.go``, wire-protocol.md §2.4) supports the schemes ``http``,
``socks5`` and ``ntlm``:

* ``http``: one ``CONNECT host:port HTTP/1.1`` request with ``Host: host:port``, ``User-Agent:
  Mozilla/5.0`` and, when the URL has credentials, ``Proxy-Authorization: Basic ...`` on the
  first request (no challenge round).  Any status but 200 fails with frp's text
  ``DialTcpByHttpProxy error, StatusCode [407]``.  The response is parsed by h11.
* ``socks5`` (golang.org/x/net/proxy): a greeting offering "no authentication" and, with
  credentials, username/password (RFC 1929); then ``CONNECT`` with the target as an IPv4 or
  IPv6 address when it is an IP literal, else as a domain name; a reply code other than 0
  fails.
* ``ntlm`` is not implemented by frptw (:func:`parse_proxy_url` refuses it).

Theory of operation.  A client is created with the target; :meth:`start` returns the first
bytes to send; :meth:`receive_data` takes what the proxy sent and returns the bytes to send
next.  Once :attr:`established` is true the tunnel is open and :meth:`take_unconsumed` gives the
bytes that already belong to the tunnelled stream.  A refusal or malformed answer raises
:class:`TunnelError` with the line to log.  Each answer has a fixed maximum size (an HTTP head
at most 16 KiB, a SOCKS5 reply at most 262 bytes), so nothing grows without bound.
"""

import base64
import ipaddress
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

import h11

from frptw.errors import ConfigError, FrpError
from frptw.wire import socks5
from frptw.wire.hostport import join_host_port

#: The schemes frp 0.65 knows; frptw implements the first two.
SCHEMES = ("http", "socks5", "ntlm")
#: Largest HTTP response head accepted from the proxy.
MAX_HEAD = 16 * 1024


class TunnelError(FrpError):
    """The forward proxy refused the tunnel or answered something else."""


@dataclass(frozen=True)
class ProxyURL:
    """A parsed ``transport.proxyURL``: scheme, proxy address and optional credentials."""

    scheme: str
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None


def parse_proxy_url(url: str, key: str = "transport.proxyURL", schemes=SCHEMES) -> ProxyURL:
    """Parse a proxy URL as frp does (Go's ``url.Parse``: ``scheme://user:pass@host:port``),
    refusing what this frpc cannot dial with a ConfigError naming ``key``; ``schemes`` are the
    ones that key takes (``auth.oidc.proxyURL``: Go's http.Transport's)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"{key} {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme == "ntlm" and scheme in schemes:
        raise ConfigError(f"{key} {url!r}: NTLM proxies are not supported by this frpc (use http or socks5)")
    if scheme not in schemes:
        raise ConfigError(f"{key} {url!r}: ProxyType must be {' or '.join(schemes)}, not [{parts.scheme}]")
    if not parts.hostname or port is None:
        raise ConfigError(f"{key} {url!r}: the proxy address needs a host and a port")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and password is None:
        password = ""
    return ProxyURL(scheme, parts.hostname, port, username, password)


class HTTPConnectClient:
    """``CONNECT host:port`` through an HTTP proxy, frp's way (credentials sent up front)."""

    def __init__(self, host: str, port: int, username: Optional[str] = None, password: Optional[str] = None) -> None:
        self._target = join_host_port(host, port)
        self._username = username
        self._password = password or ""
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._unconsumed = b""
        self.established = False

    def start(self) -> bytes:
        headers = [("Host", self._target), ("User-Agent", "Mozilla/5.0")]
        if self._username is not None:
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode("ascii")
            headers.append(("Proxy-Authorization", f"Basic {token}"))
        return self._conn.send(h11.Request(method="CONNECT", target=self._target, headers=headers)) or b""

    def receive_data(self, data: bytes) -> bytes:
        self._conn.receive_data(data)
        try:
            while True:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    return b""
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    if event.status_code != 200:
                        raise TunnelError(f"DialTcpByHttpProxy error, StatusCode [{event.status_code}]")
                    continue
                if event is h11.PAUSED:
                    self._unconsumed, _ = self._conn.trailing_data
                    self.established = True
                    return b""
                raise TunnelError(f"unexpected answer from the HTTP proxy: {type(event).__name__}")
        except h11.RemoteProtocolError as e:
            raise TunnelError(f"bad answer from the HTTP proxy: {e}") from None

    def take_unconsumed(self) -> bytes:
        data, self._unconsumed = self._unconsumed, b""
        return data


class Socks5Client:
    """``CONNECT host:port`` through a SOCKS5 proxy, as golang.org/x/net/proxy does it."""

    def __init__(self, host: str, port: int, username: Optional[str] = None, password: Optional[str] = None) -> None:
        self._host = host
        self._port = port
        self._credentials = None
        if username is not None:
            self._credentials = (username.encode(), (password or "").encode())
        self._buffer = b""
        self._stage = "greeting"
        self.established = False

    def start(self) -> bytes:
        if self._credentials is None:
            return bytes([socks5.VERSION, 1, socks5.METHOD_NO_AUTH])
        return bytes([socks5.VERSION, 2, socks5.METHOD_NO_AUTH, socks5.METHOD_USER_PASS])

    def receive_data(self, data: bytes) -> bytes:
        self._buffer += data
        out = b""
        while not self.established:
            step = {"greeting": self._greeting, "auth": self._auth, "reply": self._reply}[self._stage]()
            if step is None:
                break
            out += step
        return out

    def take_unconsumed(self) -> bytes:
        data, self._buffer = self._buffer, b""
        return data

    def _consume(self, count: int) -> bytes:
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _greeting(self) -> Optional[bytes]:
        if len(self._buffer) < 2:
            return None
        version, method = self._consume(2)
        if version != socks5.VERSION:
            raise TunnelError(f"unexpected protocol version {version} from the SOCKS5 proxy")
        if method == socks5.METHOD_USER_PASS and self._credentials is not None:
            user, password = self._credentials
            if len(user) > 255 or len(password) > 255:
                raise TunnelError("SOCKS5 username or password longer than 255 bytes")
            self._stage = "auth"
            return bytes([socks5.AUTH_VERSION, len(user)]) + user + bytes([len(password)]) + password
        if method != socks5.METHOD_NO_AUTH:
            raise TunnelError("no acceptable authentication methods (SOCKS5 proxy)")
        self._stage = "reply"
        return self._request()

    def _auth(self) -> Optional[bytes]:
        if len(self._buffer) < 2:
            return None
        _, status = self._consume(2)
        if status != 0:
            raise TunnelError("username/password authentication failed (SOCKS5 proxy)")
        self._stage = "reply"
        return self._request()

    def _request(self) -> bytes:
        try:
            ip = ipaddress.ip_address(self._host)
            atyp = socks5.ATYP_IPV4 if ip.version == 4 else socks5.ATYP_IPV6
            address = ip.packed
        except ValueError:
            name = self._host.encode("idna")
            if len(name) > 255:
                raise TunnelError(f"host name too long for SOCKS5: {self._host}") from None
            atyp, address = socks5.ATYP_DOMAIN, bytes([len(name)]) + name
        return bytes([socks5.VERSION, socks5.CMD_CONNECT, 0, atyp]) + address + self._port.to_bytes(2, "big")

    def _reply(self) -> Optional[bytes]:
        buf = self._buffer
        if len(buf) < 5:
            return None
        if buf[0] != socks5.VERSION:
            raise TunnelError(f"unexpected protocol version {buf[0]} from the SOCKS5 proxy")
        if buf[1] != socks5.SUCCEEDED:
            raise TunnelError(f"SOCKS5 proxy refused the connection: {_REPLY_TEXT.get(buf[1], f'unknown code: {buf[1]}')}")
        atyp = buf[3]
        if atyp == socks5.ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == socks5.ATYP_IPV6:
            size = 4 + 16 + 2
        elif atyp == socks5.ATYP_DOMAIN:
            size = 4 + 1 + buf[4] + 2
        else:
            raise TunnelError(f"unknown address type {atyp} in the SOCKS5 reply")
        if len(buf) < size:
            return None
        self._consume(size)
        self.established = True
        return b""


#: golang.org/x/net/internal/socks's texts for the reply codes.
_REPLY_TEXT = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


def tunnel_client(proxy: ProxyURL, host: str, port: int):
    """The client that opens a tunnel to ``host:port`` through ``proxy`` (CONNECT through an
    ``http`` or ``https`` proxy, else SOCKS5)."""
    kind = HTTPConnectClient if proxy.scheme in ("http", "https") else Socks5Client
    return kind(host, port, proxy.username, proxy.password)
