"""HTTP/1.1 header rules a Go reverse proxy follows, shared by frps's vhost and frpc's HTTP plugins.

Pure functions over h11 header lists (``[(name, value)]`` of bytes): Go's header-name
canonicalisation, Basic credentials, hop-by-hop stripping, ``Header.Set`` semantics and the
response head a reverse proxy writes back.
"""

import base64
import binascii
from email.utils import formatdate
from typing import Dict, Iterable, List, Optional, Tuple

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


def connection_tokens(headers: Headers) -> set:
    tokens = set()
    for value in header_values(headers, b"connection"):
        tokens.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return tokens


def is_upgrade(headers: Headers) -> bool:
    """True if the head asks for a protocol switch (``Connection: upgrade`` + ``Upgrade``)."""
    return b"upgrade" in connection_tokens(headers) and first_header(headers, b"upgrade") is not None


def strip_hop_by_hop(headers: Headers) -> Headers:
    named = connection_tokens(headers)
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


#: Header names as Go writes them, by the name as received.  Names repeat from request to
#: request, so each is canonicalised once; emptied when full (a client inventing names).
_CANONICAL: Dict[bytes, bytes] = {}
_CANONICAL_MAX = 4096

def canonical_name(name: bytes) -> bytes:
    canonical = _CANONICAL.get(name)
    if canonical is None:
        canonical = canonical_key(name.decode("latin-1")).encode("latin-1")
        if len(_CANONICAL) >= _CANONICAL_MAX:
            _CANONICAL.clear()
        _CANONICAL[name] = canonical
    return canonical


#: The last (whole second, ``Date`` value) formatted: a busy vhost dates many responses a second.
_last_date: Tuple[int, bytes] = (-1, b"")


def http_date(seconds: float) -> bytes:
    """The ``Date`` value Go's server writes for the time ``seconds`` (RFC 7231 IMF-fixdate)."""
    global _last_date
    whole = int(seconds)
    if _last_date[0] != whole:
        _last_date = (whole, formatdate(whole, usegmt=True).encode("ascii"))
    return _last_date[1]


def set_all(set_headers: Dict[str, str]) -> Dict[bytes, Tuple[bytes, bytes]]:
    """``set_headers`` applied in order as Go's ``Header.Set`` would, by lower-case name: a
    later name equal to an earlier one (after canonicalisation) replaces it and goes last."""
    fixed: Dict[bytes, Tuple[bytes, bytes]] = {}
    for name, value in set_headers.items():
        key = canonical_name(name.encode("latin-1"))
        lower = key.lower()
        fixed.pop(lower, None)
        fixed[lower] = (key, value.encode("latin-1"))
    return fixed


def apply_set(headers: Headers, set_headers: Dict[str, str]) -> Headers:
    """``headers`` with each of ``set_headers`` replacing every header of its name, at the end."""
    if not set_headers:
        return headers
    fixed = set_all(set_headers)
    return [(k, v) for k, v in headers if k.lower() not in fixed] + list(fixed.values())


def rewrite_response(headers: Headers, set_headers: Dict[str, str], switching: bool) -> Headers:
    """The response head written back to the user: hop-by-hop headers dropped (kept for a
    101 switch), ``response_headers`` set."""
    return apply_set(list(headers) if switching else strip_hop_by_hop(headers), set_headers)
