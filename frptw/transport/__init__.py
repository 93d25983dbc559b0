"""Twisted adapters over the sans-IO wire layer: switchable protocols, layered (codec)
transports, yamux sessions and streams, TLS with frp's first byte, and ``splice``."""
