"""Sans-IO core: bytes <-> objects for frp's wire protocol.

Nothing under this package imports Twisted (or does any I/O).  Every piece is a plain state
machine: feed it bytes, get back objects or bytes.  The Twisted adapters in
:mod:`frptw.transport` drive them.
"""
