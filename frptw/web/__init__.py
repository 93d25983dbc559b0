"""Management web servers (frpc's admin API, frps's dashboard) on ``twisted.web``.

frp's two management servers share one shape (``pkg/util/http/server.go`` in frp 0.65): an
HTTP(S) server on ``webServer.addr:port`` with 60 s timeouts, HTTP Basic auth on every route
but ``/healthz``, a 200 ms delay before each 401, Go's plain-text 404 and empty 405 answers, and
the web UI under ``/static/`` (from ``webServer.assetsDir``).  This package is that shape; the
programs add their own resources:

* :class:`WebServer` listens (TCP, or TLS with ``webServer.tls``) and serves a resource tree
  through a :class:`BoundedSite` (request bodies capped, 413 beyond);
* :class:`BasicAuthGate` puts a tree behind Basic auth the way frp does;
* :class:`ApiResource`, :class:`NotFound`, :class:`MethodNotAllowed`, :class:`Healthz`,
  :class:`RedirectToStatic` and :func:`staticAssets` are the building blocks with frp's
  answers.
"""

from frptw.web._auth import AUTH_FAIL_DELAY, REALM, BasicAuthGate
from frptw.web._resources import ApiResource, Healthz, MethodNotAllowed, NotFound, RedirectToStatic, textBody
from frptw.web._server import WebServer
from frptw.web._site import MAX_BODY, REQUEST_TIMEOUT, BoundedSite
from frptw.web._static import staticAssets

__all__ = [
    "AUTH_FAIL_DELAY",
    "ApiResource",
    "BasicAuthGate",
    "BoundedSite",
    "Healthz",
    "MAX_BODY",
    "MethodNotAllowed",
    "NotFound",
    "REALM",
    "REQUEST_TIMEOUT",
    "RedirectToStatic",
    "WebServer",
    "staticAssets",
    "textBody",
]
