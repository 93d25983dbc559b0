"""Resources that answer like frp's Go HTTP servers (``net/http`` + gorilla/mux).

Go's answers differ from twisted.web's defaults, and clients (the Go ``frpc`` CLI, scripts)
see them: an unknown path is ``404`` with the text ``404 page not found``; a known path asked
with another method is ``405`` with an empty body (no HTML page, and ``HEAD`` is *not* ``GET``);
a data answer without an explicit type is what Go sniffs for text, ``text/plain; charset=utf-8``.
"""

from typing import Iterable, Optional

from twisted.web.resource import Resource

#: Go's ``http.Error`` headers.
_GO_TEXT = b"text/plain; charset=utf-8"


def textBody(request, code: int, text: str) -> bytes:
    """Answer ``code`` with ``text`` the way Go's ``http.Error`` does (trailing newline included
    when the caller adds one); returns the body for a ``render_*`` method."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", _GO_TEXT)
    request.setHeader(b"x-content-type-options", b"nosniff")
    return text.encode("utf-8")


class _AnyMethod:
    """``allowedMethods`` of a resource that answers every method itself."""

    def __contains__(self, method: object) -> bool:
        return True


#: Put as ``allowedMethods`` on a resource whose ``render`` serves every method.
ANY_METHOD = _AnyMethod()


def allowsMethod(resource, method: bytes) -> bool:
    """Would ``resource`` serve ``method``?  An explicit ``allowedMethods`` wins; otherwise a
    ``render_METHOD`` must exist (so ``HEAD`` is not folded into ``GET``, as in gorilla/mux)."""
    allowed: Optional[Iterable[bytes]] = getattr(resource, "allowedMethods", None)
    if allowed is not None:
        return method in allowed
    return callable(getattr(resource, "render_" + method.decode("ascii", "replace"), None))


class NotFound(Resource):
    """Go's ``404 page not found`` for any method and any path below."""

    isLeaf = True
    allowedMethods = ANY_METHOD

    def render(self, request) -> bytes:
        return textBody(request, 404, "404 page not found\n")


class MethodNotAllowed(Resource):
    """gorilla/mux's answer to a known path asked with another method: 405, empty body."""

    isLeaf = True
    allowedMethods = ANY_METHOD

    def render(self, request) -> bytes:
        request.setResponseCode(405)
        return b""


class ApiResource(Resource):
    """A resource of a management API: its children are only those put with ``putChild``
    (anything else is :class:`NotFound`), and a method without ``render_METHOD`` is
    :class:`MethodNotAllowed` (empty 405, not twisted.web's HTML page)."""

    #: twisted.web would answer ``HEAD`` with ``render_GET``; Go's router does not.
    render_HEAD = None

    def getChild(self, path: bytes, request) -> Resource:
        return NotFound()

    def render(self, request) -> bytes:
        if not allowsMethod(self, request.method):
            return MethodNotAllowed().render(request)
        return super().render(request)


class Healthz(Resource):
    """``/healthz``: 200 with an empty body for any method, never behind auth."""

    isLeaf = True
    allowedMethods = ANY_METHOD

    def render(self, request) -> bytes:
        return b""


class RedirectToStatic(Resource):
    """``/``: a 301 to ``/static/`` (the web UI) for any method, like frp's router."""

    isLeaf = True
    allowedMethods = ANY_METHOD

    def render(self, request) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"location", b"/static/")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if request.method in (b"GET", b"HEAD"):
            return b'<a href="/static/">Moved Permanently</a>.\n\n'
        return b""
