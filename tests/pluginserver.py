"""A server plugin for tests: a twisted.web resource on loopback that records every call frps
makes and answers as the test scripted it (tests/test_server_plugins*.py).

:class:`PluginServer` answers each operation with what :meth:`PluginServer.answer` set for it
(default ``{"reject": false, "unchange": true}``): a reply object, a function of the request's
``content`` returning one, an :class:`HTTPAnswer` (any status and raw body), or :data:`HOLD` (the request stays unanswered until :meth:`release` or
the connection closes).  Every call is recorded as a :class:`Call` (path, query, headers, JSON
body) whatever the answer.
"""

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support import until


@dataclass
class Call:
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Dict[str, Any]

    @property
    def op(self) -> str:
        return self.body.get("op", "")

    @property
    def content(self) -> Dict[str, Any]:
        return self.body.get("content") or {}


@dataclass(frozen=True)
class HTTPAnswer:
    status: int = 200
    body: bytes = b""


class _Hold:
    def __repr__(self) -> str:
        return "HOLD"


#: Leave the request unanswered.
HOLD = _Hold()

Answer = Union[Dict[str, Any], Callable[[Dict[str, Any]], Dict[str, Any]], HTTPAnswer, _Hold]
UNCHANGED: Dict[str, Any] = {"reject": False, "unchange": True}


class PluginServer(Resource):
    """The recording, scripted plugin (``isLeaf``: every path lands here)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[Call] = []
        self.answers: Dict[str, Answer] = {}
        self.held: List[Any] = []

    def answer(self, op: str, answer: Answer) -> None:
        self.answers[op] = answer

    def render_POST(self, request) -> Union[bytes, int]:
        body = request.content.read()
        try:
            document = json.loads(body)
        except ValueError:
            document = {"unparsed": body.decode("utf-8", "replace")}
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        query = {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()}
        self.calls.append(Call(request.path.decode(), query, headers, document))
        answer = self.answers.get(document.get("op", ""), UNCHANGED)
        if callable(answer):
            answer = answer(document.get("content") or {})
        if answer is HOLD:
            self.held.append(request)
            request.notifyFinish().addErrback(lambda _: None)
            return NOT_DONE_YET
        if isinstance(answer, HTTPAnswer):
            request.setResponseCode(answer.status)
            return answer.body
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(answer).encode()

    def release(self, answer: Dict[str, Any] = UNCHANGED) -> None:
        """Answer every held request with ``answer``."""
        held, self.held = self.held, []
        for request in held:
            if not request.finished and not request._disconnected:
                request.setHeader(b"Content-Type", b"application/json")
                request.write(json.dumps(answer).encode())
                request.finish()

    def of(self, op: str) -> List[Call]:
        return [call for call in self.calls if call.op == op]

    async def waitFor(self, op: str, count: int = 1, timeout: float = 10.0) -> List[Call]:
        await until(lambda: len(self.of(op)) >= count, f"{count} {op} call(s) to the plugin", timeout)
        return self.of(op)


async def listenPlugin(testCase, plugin: PluginServer, tls: Optional[Tuple[str, str]] = None) -> int:
    """Serve ``plugin`` on 127.0.0.1 (any port) until the test ends; its port.  ``tls``: the
    PEM certificate and key files to serve https with."""
    site = Site(plugin)
    site.noisy = False
    if tls is None:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
    else:
        with open(tls[0], "rb") as certificate, open(tls[1], "rb") as key:
            options = ssl.PrivateCertificate.loadPEM(certificate.read() + key.read()).options()
        port = reactor.listenSSL(0, site, options, interface="127.0.0.1")

    def stop() -> Deferred:
        plugin.release()
        return port.stopListening()

    testCase.addCleanup(stop)
    return port.getHost().port
