"""Errors raised by the sans-IO wire layer.

:class:`ProtocolError` is defined in :mod:`frptw.errors`, which imports nothing, so the wire
layer stays free of Twisted while its errors are :class:`~frptw.errors.FrpError` s like every
other error frptw raises.
"""

from frptw.errors import ProtocolError

__all__ = ["ProtocolError"]
