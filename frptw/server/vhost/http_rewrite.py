"""What frps's HTTP vhost reads from a request and how it rewrites heads (wire-protocol.md §10.2).

Pure functions over h11 header lists (``[(name, value)]`` of bytes), so that every rule is
tested without a connection: the routing key of a request and the request head written to the
work connection (the rules every Go reverse proxy shares are in :mod:`frptw.transport.http_headers`).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from frptw.transport.http_headers import (
    HOP_BY_HOP,
    Headers,
    canonical_name,
    connection_tokens,
    first_header,
    parse_basic_auth,
    set_all,
)

#: Set last by rewrite_request, whatever came before.
_FORWARDED_SET = frozenset({b"x-forwarded-host", b"x-forwarded-proto"})


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
        # Origin form: the path is everything before "?" (urlsplit would read "//x" as a host).
        host, path = host_header, text.partition("?")[0] if text != "*" else ""
    user = ""
    if absolute:
        proxy_auth = parse_basic_auth(first_header(headers, b"proxy-authorization"))
        user = proxy_auth[0] if proxy_auth else ""
    if not user and authorization:
        user = authorization[0]
    return RouteKey(host, unquote(path), target, absolute, user, authorization)


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
    named = connection_tokens(headers)
    upgrade = first_header(headers, b"upgrade") if b"upgrade" in named else None
    fixed = set_all(set_headers) if set_headers else {}
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
            out.append((canonical_name(name), value))
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


