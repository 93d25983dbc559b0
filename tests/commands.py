"""One-shot command lines for the admin tests: the real Go ``frpc status|reload|stop -c F``
and our ``frptw status|reload|stop --config F``, each run to completion (bounded) with its
stdout, stderr and exit code."""

import os
import sys
from dataclasses import dataclass

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.frpbin import frp_binary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Ran:
    out: str
    err: str
    code: int


async def _run(executable: str, argv, env) -> Ran:
    d = getProcessOutputAndValue(executable, argv, env=env, path=ROOT)
    out, err, code = await d.addTimeout(40, reactor)
    return Ran(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code)


async def goFrpc(*args: str) -> Ran:
    """The real Go frpc 0.65 with ``args`` (e.g. ``"status", "-c", path``)."""
    return await _run(frp_binary("frpc"), list(args), {"PATH": os.environ.get("PATH", "")})


async def frptwCli(*args: str) -> Ran:
    """Our ``frptw`` command line (this checkout, this interpreter) with ``args``."""
    argv = ["-c", "import sys; from frptw.cli import main; sys.exit(main())", *args]
    return await _run(sys.executable, argv, dict(os.environ, PYTHONPATH=ROOT))
