"""frps, the frp server, as Twisted services and protocols.

Embedding: build a :class:`frptw.config.ServerConfig` (or load one with
:func:`frptw.config.load_server_config`) and run ``FrpServerService(config)`` under any
Twisted application; ``whenListening()`` tells when (and on which port) it accepts clients,
``whenProxyRunning(name)`` when a proxy runs, and ``proxies()`` / ``clients()`` return frozen
snapshots (:mod:`frptw.server.records`).
"""

from frptw.server.records import ClientRecord, ProxyRecord
from frptw.server.service import FrpServerService

__all__ = ["FrpServerService", "ProxyRecord", "ClientRecord"]
