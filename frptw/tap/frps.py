"""``twistd frps``: the Options class and service maker for the server."""

from frptw.tap import ServerOptions as Options
from frptw.tap import makeService

__all__ = ["Options", "makeService"]
