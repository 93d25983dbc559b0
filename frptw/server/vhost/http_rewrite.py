"""What frps's HTTP vhost reads from a request and how it rewrites heads (wire-protocol.md §10.2).

Pure functions over h11 header lists (``[(name, value)]`` of bytes), so that every rule is
tested without a connection: the routing key of a request, Basic credentials, the request
head written to the work connection and the response head written back to the user.
"""

import base64
import binascii
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

Headers = List[Tuple[bytes, bytes]]

#: Hop-by-hop headers a Go reverse proxy removes in both directions (RFC 7230 §6.1).
HOP_BY_HOP = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
     b"trailer", b"transfer-encoding", b"upgrade"}
)


def canonical_key(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-forwarded-for`` -> ``X-Forwarded-For``; a name
    with characters outside a token is left as it is."""
    if not name or any(not (c.isalnum() or c in "!#$%&'*+-.^_`|~") or not c.isascii() for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def header_values(headers: Iterable[Tuple[bytes, bytes]], name: bytes) -> List[bytes]:
    """Every value of header ``name`` (lower-case), in order."""
    return [value for key, value in headers if key.lower() == name]


def first_header(headers: Iterable[Tuple[bytes, bytes]], name: bytes) -> Optional[bytes]:
    values = header_values(headers, name)
    return values[0] if values else None


def parse_basic_auth(value: Optional[bytes]) -> Optional[Tuple[str, str]]:
    """(user, password) of a ``Basic`` credential, or None when absent or malformed (like
    Go's ``Request.BasicAuth``: case-insensitive scheme, standard base64, first ``:`` splits)."""
    if value is None or len(value) < 6 or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:], validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@dataclass(frozen=True)
class RouteKey:
    """How a request is routed and authenticated.

    ``host`` is the raw authority (port included, case kept: it is also the
    ``X-Forwarded-Host``); ``absolute`` tells a proxy-style request
    (``GET http://host/path``) whose origin-form ``target`` is written to the backend.
    """

    host: str
    path: str
    target: bytes
    absolute: bool
    route_user: str
    credentials: Optional[Tuple[str, str]]


def route_key(method: bytes, target: bytes, headers: Headers) -> RouteKey:
    """The routing key of a request as frp 0.65 derives it: the Host header, or the URL's
    host for an absolute-form target; the (unescaped) URL path; the route user from
    ``Authorization: Basic`` (for a proxy-style request ``Proxy-Authorization`` first)."""
    host_header = (first_header(headers, b"host") or b"").decode("latin-1")
    text = target.decode("latin-1")
    authorization = parse_basic_auth(first_header(headers, b"authorization"))
    if method == b"CONNECT":
        return RouteKey(text or host_header, "", target, False, authorization[0] if authorization else "",
                        authorization)
    absolute = "://" in text and not text.startswith("/")
    if absolute:
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2] or host_header
        origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path, target = parts.path, origin.encode("latin-1")
    else:
        host, path = host_header, urlsplit(text).path if text != "*" else ""
    user = ""
    if absolute:
        proxy_auth = parse_basic_auth(first_header(headers, b"proxy-authorization"))
        user = proxy_auth[0] if proxy_auth else ""
    if not user and authorization:
        user = authorization[0]
    return RouteKey(host, unquote(path), target, absolute, user, authorization)


def _connection_tokens(headers: Headers) -> set:
    tokens = set()
    for value in header_values(headers, b"connection"):
        tokens.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return tokens


def is_upgrade(headers: Headers) -> bool:
    """True if the head asks for a protocol switch (``Connection: upgrade`` + ``Upgrade``)."""
    return b"upgrade" in _connection_tokens(headers) and first_header(headers, b"upgrade") is not None


def _strip_hop_by_hop(headers: Headers) -> Headers:
    named = _connection_tokens(headers)
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


#: Header names as Go writes them, by the name as received.  Names repeat from request to
#: request, so each is canonicalised once; emptied when full (a client inventing names).
_CANONICAL: Dict[bytes, bytes] = {}
_CANONICAL_MAX = 4096

#: Set last by rewrite_request, whatever came before.
_FORWARDED_SET = frozenset({b"x-forwarded-host", b"x-forwarded-proto"})


def _canonical_name(name: bytes) -> bytes:
    canonical = _CANONICAL.get(name)
    if canonical is None:
        canonical = canonical_key(name.decode("latin-1")).encode("latin-1")
        if len(_CANONICAL) >= _CANONICAL_MAX:
            _CANONICAL.clear()
        _CANONICAL[name] = canonical
    return canonical


def _set_all(set_headers: Dict[str, str]) -> Dict[bytes, Tuple[bytes, bytes]]:
    """``set_headers`` applied in order as Go's ``Header.Set`` would, by lower-case name: a
    later name equal to an earlier one (after canonicalisation) replaces it and goes last."""
    fixed: Dict[bytes, Tuple[bytes, bytes]] = {}
    for name, value in set_headers.items():
        key = _canonical_name(name.encode("latin-1"))
        lower = key.lower()
        fixed.pop(lower, None)
        fixed[lower] = (key, value.encode("latin-1"))
    return fixed


def _set(headers: Headers, set_headers: Dict[str, str]) -> Headers:
    """``headers`` with each of ``set_headers`` replacing every header of its name, at the end."""
    if not set_headers:
        return headers
    fixed = _set_all(set_headers)
    return [(k, v) for k, v in headers if k.lower() not in fixed] + list(fixed.values())


def rewrite_request(
    headers: Headers,
    key: RouteKey,
    client_ip: str,
    host_header_rewrite: str,
    set_headers: Dict[str, str],
    chunked: bool,
) -> Headers:
    """The request head frps writes to the work connection (names canonicalised as Go does).

    In order: ``Host``, the request's end-to-end headers, the proxy's ``headers`` (replacing
    those of the same name), the upgrade pair for a protocol switch, ``Transfer-Encoding:
    chunked`` when ``chunked`` (Transfer-Encoding is hop-by-hop but the body still needs
    framing on the next hop), then ``X-Forwarded-For`` (the client's list plus its address),
    ``X-Forwarded-Host`` and ``X-Forwarded-Proto`` (replacing any).  One pass: this runs for
    every request."""
    named = _connection_tokens(headers)
    upgrade = first_header(headers, b"upgrade") if b"upgrade" in named else None
    fixed = _set_all(set_headers) if set_headers else {}
    out: Headers = []
    if b"host" not in fixed:
        out.append((b"Host", (host_header_rewrite or key.host).encode("latin-1")))
    forwarded_for: List[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"x-forwarded-for":
            forwarded_for.append(value)
        elif not (lower in HOP_BY_HOP or lower in named or lower == b"host" or lower in fixed
                  or lower in _FORWARDED_SET):
            out.append((_canonical_name(name), value))
    out.extend(value for lower, value in fixed.items() if lower not in _FORWARDED_SET)
    if upgrade is not None:
        out += [(b"Connection", b"Upgrade"), (b"Upgrade", upgrade)]
    if chunked:
        out.append((b"Transfer-Encoding", b"chunked"))
    ip = client_ip.encode("latin-1")
    out.append((b"X-Forwarded-For", b", ".join(forwarded_for) + b", " + ip if forwarded_for else ip))
    out.append((b"X-Forwarded-Host", key.host.encode("latin-1")))
    out.append((b"X-Forwarded-Proto", b"http"))
    return out


def rewrite_response(headers: Headers, set_headers: Dict[str, str], switching: bool) -> Headers:
    """The response head written back to the user: hop-by-hop headers dropped (kept for a
    101 switch), ``response_headers`` set."""
    return _set(list(headers) if switching else _strip_hop_by_hop(headers), set_headers)
