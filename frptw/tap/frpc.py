"""``twistd frpc``: the Options class and service maker for the client."""

from frptw.tap import ClientOptions as Options
from frptw.tap import makeService

__all__ = ["Options", "makeService"]
