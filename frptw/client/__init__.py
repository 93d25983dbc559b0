"""frpc on Twisted: :class:`FrpClientService` keeps a logged-in session with frps and serves the
configured proxies; embed it in any Twisted application or run it with ``twistd frpc``.

Public API: ``FrpClientService(config, reactor=None)`` with ``whenLoggedIn()``,
``addProxy(proxyConfig)``, ``removeProxy(name)`` and ``proxyStatus(name)`` (a
:class:`ProxyStatus`).  Failures are the typed exceptions of :mod:`frptw.errors`.
"""

from frptw.client._proxies import ProxyStatus
from frptw.client._service import FrpClientService

__all__ = ["FrpClientService", "ProxyStatus"]
