"""frpc on Twisted: :class:`FrpClientService` keeps a logged-in session with frps and serves the
configured proxies and visitors; embed it in any Twisted application or run it with
``twistd frpc``.

Public API (see docs/embedding.md): ``FrpClientService(config, reactor=None, onFatal=None)``
with ``whenLoggedIn()``, ``addProxy(proxyConfig)``, ``removeProxy(name)``,
``whenProxyRunning(name)``, ``proxyStatus(name)`` and ``proxies()`` (frozen
:class:`ProxyStatus` snapshots), ``addVisitor(visitorConfig)``, ``removeVisitor(name)`` and
``visitors()`` (:class:`VisitorStatus` snapshots).  Failures are the typed exceptions of
:mod:`frptw.errors`.  ``applyConfig(config)`` is frp's hot reload (only new, gone and changed
proxies and visitors change); :class:`Reloader` reloads a configuration file into a service and
:class:`AdminService` is frpc's admin API (``webServer.*``) on :mod:`frptw.web`.
"""

from frptw.client._proxies import ProxyStatus
from frptw.client._reload import Reloader
from frptw.client._service import FrpClientService
from frptw.client._visitors import VisitorStatus

__all__ = ["AdminService", "FrpClientService", "ProxyStatus", "Reloader", "VisitorStatus"]


def __getattr__(name: str):
    """``AdminService`` on first use: it brings ``twisted.web`` (~40 ms of frpc's start), which an
    frpc without ``webServer.port`` never needs."""
    if name == "AdminService":
        from frptw.client._admin import AdminService

        return AdminService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
