"""HTTP Basic auth in front of a resource tree, as frp's ``HTTPAuthMiddleware`` does it.

frp 0.65 (``pkg/util/net/http.go``, used by ``pkg/util/http/server.go``):

* no check at all when both user and password are empty;
* otherwise the request's Basic credentials must equal both (compared in constant time);
* a refused request waits ``AUTH_FAIL_DELAY`` (200 ms) and then gets ``401``,
  ``WWW-Authenticate: Basic realm="Restricted"`` and the text ``Unauthorized``.  Go sleeps in
  the goroutine of that one request, so only that caller waits; here the wait is a timer on the
  given clock, so the reactor keeps serving everyone else meanwhile;
* the check runs only on a route that matched: an unknown path is 404 and a known path asked
  with another method is 405 *without* credentials (gorilla/mux applies middleware to matched
  routes only).  :class:`BasicAuthGate` therefore resolves the whole path first and asks for
  credentials only when the resource found would really serve the request.
"""

import hmac
from typing import Mapping, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET

from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall
from frptw.web._resources import MethodNotAllowed, NotFound, allowsMethod, textBody

#: How long frp makes a caller with wrong credentials wait for its 401.
AUTH_FAIL_DELAY = 0.2
#: The realm frp names in ``WWW-Authenticate``.
REALM = "Restricted"

_log = FrpLogger(namespace="frptw.web")


class _Refusal(Resource):
    """The 401, written after the delay; the timer goes if the caller hangs up first."""

    isLeaf = True

    def __init__(self, clock: IReactorTime, delay: float) -> None:
        super().__init__()
        self._clock = clock
        self._delay = delay

    def render(self, request):
        if self._delay <= 0:
            return self._refuse(request)
        timer = self._clock.callLater(self._delay, self._answer, request)
        request.notifyFinish().addErrback(lambda _: cancelCall(timer))
        return NOT_DONE_YET

    def _answer(self, request) -> None:
        request.write(self._refuse(request))
        request.finish()

    def _refuse(self, request) -> bytes:
        request.setHeader(b"www-authenticate", f'Basic realm="{REALM}"'.encode())
        return textBody(request, 401, "Unauthorized\n")


class BasicAuthGate(Resource):
    """Serve ``tree`` to callers with the right Basic credentials.

    :param tree: the protected resources (its children are this gate's children).
    :param user: ``webServer.user``; with ``password`` both empty, nobody is asked.
    :param password: ``webServer.password``.
    :param clock: the reactor (a ``task.Clock`` in tests) for the refusal delay.
    :param delay: seconds a refused caller waits for its 401.
    :param public: children served to anyone (frp: ``healthz``), by path segment.
    """

    def __init__(
        self,
        tree: IResource,
        user: str,
        password: str,
        clock: IReactorTime,
        delay: float = AUTH_FAIL_DELAY,
        public: Optional[Mapping[bytes, IResource]] = None,
    ) -> None:
        super().__init__()
        self._tree = tree
        self._user = user.encode("utf-8")
        self._password = password.encode("utf-8")
        self._clock = clock
        self._delay = delay
        self._public = dict(public or {})

    @property
    def enabled(self) -> bool:
        """Whether credentials are asked at all."""
        return bool(self._user or self._password)

    def authorized(self, request) -> bool:
        """Do the request's Basic credentials match (always true when the gate is open)?"""
        if not self.enabled:
            return True
        user, password = request.getUser(), request.getPassword()
        # Both compared every time, like frp, so the timing says nothing about which was wrong.
        sameUser = hmac.compare_digest(user, self._user)
        samePassword = hmac.compare_digest(password, self._password)
        return sameUser and samePassword and request.getHeader(b"authorization") is not None

    def getChildWithDefault(self, path: bytes, request) -> IResource:
        if path in self._public:
            return self._public[path]
        request.postpath.insert(0, request.prepath.pop())
        return self._guard(getChildForRequest(self._tree, request), request)

    def render(self, request):
        return self._guard(self._tree, request).render(request)

    def _guard(self, target: IResource, request) -> IResource:
        if isinstance(target, NotFound):
            return target
        if not allowsMethod(target, request.method):
            return MethodNotAllowed()
        if self.authorized(request):
            return target
        _log.debug(
            "refused {method} {path}: wrong or missing credentials",
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("ascii", "replace"),
        )
        return _Refusal(self._clock, self._delay)
