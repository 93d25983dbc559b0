"""``twistd frps``: the Options class and service maker for the server."""

from frptw.tap import ServerOptions as Options, makeService

__all__ = ["Options", "makeService"]
