"""Errors raised by the sans-IO wire layer."""


class ProtocolError(Exception):
    """The peer sent bytes that break the protocol (bad frame, oversize length, bad JSON...).

    The connection that produced them must be closed; nothing else is affected.
    """
