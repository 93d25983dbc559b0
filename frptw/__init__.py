"""frptw: frp (the fast reverse proxy) rebuilt on Twisted, wire-compatible with Go frp.

Public entry points:

* :mod:`frptw.config` -- load and validate frp configuration files (INI, TOML, YAML, JSON).
* :mod:`frptw.client` -- the frpc service, to embed in any Twisted application.
* :mod:`frptw.server` -- the frps service, likewise.
* :mod:`frptw.errors` -- the typed exceptions those APIs fail with.
"""

__version__ = "0.1.0"

#: The frp release whose wire protocol and configuration we follow; sent as ``version`` in Login.
FRP_VERSION = "0.65.0"
