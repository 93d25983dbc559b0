"""frpc's admin API on ``twisted.web`` (frp 0.65 ``client/admin_api.go``).

Routes, all behind Basic auth but ``/healthz`` (see :mod:`frptw.web`):

=====================  =============================================================
``GET /healthz``       200, empty
``GET /api/status``    200, JSON ``{type: [proxy, ...]}`` sorted by name (``{}`` before the
                       first login), names ``user.name`` as frp 0.65 shows them
``GET /api/reload``    re-read the config file and apply it (:mod:`frptw.client._reload`):
                       200 empty; 400 + the loading/verify error, nothing changed
``POST /api/stop``     200 empty, then ``onStop`` (the program exits)
``GET /api/config``    200 + the config file's text; 400 without a file / unreadable
``PUT /api/config``    replace the config file with the body (no reload): 200 empty; 400 for
                       an empty body, or (frptw only, frp writes anything) a body that is not
                       a valid frpc configuration; 413 over the size limit; 500 if writing fails
``GET /``              301 to ``/static/``; ``/static/`` serves ``webServer.assetsDir``
=====================  =============================================================

Like frp 0.65, data answers are ``text/plain; charset=utf-8`` (Go sniffs them) and errors are
the status with the raw error text.
"""

import json
import os
from typing import Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from frptw.client._reload import ConfigDiff, Reloader
from frptw.config import parse_client_config
from frptw.errors import ConfigError
from frptw.logs import FrpLogger
from frptw.web import ApiResource, BasicAuthGate, Healthz, RedirectToStatic, WebServer, staticAssets, textBody

_log = FrpLogger(namespace="frptw.client.admin")

_TEXT = b"text/plain; charset=utf-8"


def goParseBool(text: str) -> Optional[bool]:
    """Go's ``strconv.ParseBool``: the value, or None for anything else."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def statusDocument(service) -> dict:
    """``GET /api/status``'s document: proxies by type, each list sorted by (wire) name."""
    document: dict = {}
    if not service.everLoggedIn:
        return document
    for status in service.proxies():
        document.setdefault(status.type, []).append(
            {
                "name": service.wireName(status.name),
                "type": status.type,
                "status": status.status,
                "err": status.err,
                "local_addr": status.local_addr,
                "plugin": status.plugin,
                "remote_addr": status.remote_addr,
            }
        )
    for items in document.values():
        items.sort(key=lambda item: item["name"])
    return {kind: document[kind] for kind in sorted(document)}  # Go's json sorts map keys


def _logged(path: str, code: int) -> None:
    _log.info("api response [{path}], code [{code}]", path=path, code=code)


class _Status(ApiResource):
    isLeaf = True

    def __init__(self, service) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request) -> bytes:
        _log.info("http request [/api/status]")
        body = json.dumps(statusDocument(self._service), separators=(",", ":"), ensure_ascii=False)
        request.setHeader(b"content-type", _TEXT)
        return body.encode("utf-8")


class _Reload(ApiResource):
    isLeaf = True

    def __init__(self, reloader: Reloader) -> None:
        super().__init__()
        self._reloader = reloader

    def render_GET(self, request):
        _log.info("api request [/api/reload]")
        given = request.args.get(b"strictConfig", [b""])[0].decode("utf-8", "replace")
        strict = bool(goParseBool(given)) if given else False  # frp: off unless asked
        answer = _Answer(request)
        self._reloader.reload(strict).addCallbacks(self._done, self._failed, (answer,), None, (answer,))
        return NOT_DONE_YET

    def _done(self, _: ConfigDiff, answer: "_Answer") -> None:
        _logged("/api/reload", 200)
        answer.send(200, "")

    def _failed(self, failure: Failure, answer: "_Answer") -> None:
        code = 400 if failure.check(ConfigError) else 500
        if code == 500:
            _log.failure("applying the reloaded configuration failed", failure)
        _logged("/api/reload", code)
        answer.send(code, str(failure.value))


class _Answer:
    """A response written later; dropped if the caller hung up meanwhile."""

    def __init__(self, request) -> None:
        self._request = request
        self._gone = False
        request.notifyFinish().addErrback(self._hungUp)

    def _hungUp(self, _: Failure) -> None:
        self._gone = True

    def send(self, code: int, text: str) -> None:
        if self._gone:
            return
        if code == 200 and not text:
            self._request.setResponseCode(200)
        else:
            self._request.write(textBody(self._request, code, text))
        self._request.finish()


class _Stop(ApiResource):
    isLeaf = True

    def __init__(self, onStop: Callable[[], None]) -> None:
        super().__init__()
        self._onStop = onStop

    def render_POST(self, request) -> bytes:
        _log.info("api request [/api/stop]")
        # Answer first, then stop (frp: a graceful close 100 ms later).
        request.notifyFinish().addBoth(lambda _: self._onStop())
        _logged("/api/stop", 200)
        return b""


class _Config(ApiResource):
    isLeaf = True

    def __init__(self, reloader: Reloader) -> None:
        super().__init__()
        self._reloader = reloader

    def render_GET(self, request) -> bytes:
        _log.info("http get request [/api/config]")
        path = self._reloader.path
        if not path:
            return self._refuse(request, 400, "frpc has no config file path")
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            return self._refuse(request, 400, f"open {path}: {e.strerror.lower()}")
        request.setHeader(b"content-type", _TEXT)
        return content

    def render_PUT(self, request) -> bytes:
        _log.info("http put request [/api/config]")
        path = self._reloader.path
        body = request.content.read()
        if not body:
            return self._refuse(request, 400, "body can't be empty")
        if not path:
            return self._refuse(request, 400, "frpc has no config file path")
        try:
            text = body.decode("utf-8")
            parse_client_config(text, source=path, strict=False)
        except UnicodeDecodeError as e:
            return self._refuse(request, 400, f"{path}: the new content is not UTF-8 text ({e.reason})")
        except ConfigError as e:
            return self._refuse(request, 400, str(e))
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as f:
                f.write(body)
        except OSError as e:
            return self._refuse(request, 500, f"write content to frpc config file error: {e}")
        _log.info("http put response [/api/config], code [200]")
        return b""

    def _refuse(self, request, code: int, text: str) -> bytes:
        _log.warn("{error}", error=text)
        _log.info("api response [/api/config], code [{code}]", code=code)
        return textBody(request, code, text)


def adminTree(service, reloader: Reloader, onStop: Callable[[], None], assetsDir: str = "") -> ApiResource:
    """The admin API's resources (before auth)."""
    api = ApiResource()
    api.putChild(b"status", _Status(service))
    api.putChild(b"reload", _Reload(reloader))
    api.putChild(b"stop", _Stop(onStop))
    api.putChild(b"config", _Config(reloader))
    root = ApiResource()
    root.putChild(b"api", api)
    root.putChild(b"", RedirectToStatic())
    root.putChild(b"static", staticAssets(assetsDir))
    return root


class AdminService(Service):
    """frpc's admin server (``webServer.*``) as a Twisted service.

    :param service: the :class:`FrpClientService` it reports on.
    :param reloader: reloads the configuration file (``/api/reload``, ``/api/config``).
    :param reactor: the reactor (listening, the refusal delay).
    :param onStop: what ``POST /api/stop`` does after answering (twistd: exit the process).
    :param onListenFailed: called with the Failure when the port cannot be had (twistd: exit 1).
    """

    name = "admin"

    def __init__(self, service, reloader: Reloader, reactor, onStop: Callable[[], None],
                 onListenFailed: Optional[Callable[[Failure], None]] = None) -> None:
        web = service.config.web_server
        tree = adminTree(service, reloader, onStop, web.assets_dir)
        gate = BasicAuthGate(tree, web.user, web.password, reactor, public={b"healthz": Healthz()})
        self.server = WebServer(web, gate, reactor, what="admin server")
        self._onListenFailed = onListenFailed
        #: Fires with the listening port once the server listens (None if it could not).
        self.listening: Optional[Deferred] = None

    def startService(self) -> None:
        super().startService()
        self.listening = self.server.listen()
        self.listening.addErrback(self._listenFailed)

    def _listenFailed(self, failure: Failure) -> None:
        _log.error("admin server cannot listen: {error}", error=failure.value)
        if self._onListenFailed is not None:
            self._onListenFailed(failure)

    def stopService(self) -> Deferred:
        super().stopService()
        return self.server.stop()
