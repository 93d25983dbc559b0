"""The xtcp test lab: :class:`~tests.netns.NatTopology` with frps, a STUN server, frpc owner
and visitor (Go or frptw, each a process in its namespace) and the traffic tools.

frps listens on 203.0.113.1:7000 and the STUN server on 203.0.113.1:3478 (alternate
203.0.113.2:3479) in ``inet``; the owner's echo service is 127.0.0.1:8000 in ``owner``;
visitors bind 127.0.0.1:9000 (xtcp) and 9001 (stcp fallback) in ``visitor``.  Fixed ports are
fine: every test has namespaces of its own.
"""

import os
import sys
from typing import Dict, Optional

from twisted.internet import reactor
from twisted.trial.unittest import SkipTest

from tests.gofrp import GoFrp, writeConfig
from tests.netns import SERVER_IP, NatTopology, available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRPS_PORT = 7000
STUN = f"{SERVER_IP}:3478"
ECHO_PORT = 8000
XTCP_PORT = 9000
STCP_PORT = 9001
TOKEN = "labtoken"
SK = "labsecret"

_TWISTD = "from twisted.scripts.twistd import run; run()"


def _pythonEnv() -> Dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT}


class NatLabMixin:
    """For a TestCase: build the lab (``symmetric`` NATs or cone ones) and run things in it."""

    timeout = 120
    symmetric = False

    async def startLab(self) -> None:
        reason = available()
        if reason:
            raise SkipTest(reason)
        self.lab = NatTopology(self.symmetric)
        self.lab.create()
        self.addCleanup(self.lab.destroy)
        await self.spawn("inet", "stun", [sys.executable, "-m", "tests.stunserver", f"{SERVER_IP}:3478",
                                        "203.0.113.2:3479"], "stun server ready")

    async def spawn(self, role: str, name: str, argv, ready: Optional[str], timeout: float = 20.0,
                  directory: Optional[str] = None) -> GoFrp:
        proc = await GoFrp.command(reactor, name, self.lab.argv(role, argv), ready, timeout,
                                   directory=directory or _tempDir(), env=_pythonEnv())
        self.addCleanup(proc.stop)
        return proc

    async def frps(self, kind: str, extra: str = "") -> GoFrp:
        text = f'bindAddr = "{SERVER_IP}"\nbindPort = {FRPS_PORT}\nauth.token = "{TOKEN}"\n{extra}\n'
        return await self._frp(kind, "frps", "inet", text)

    async def frpc(self, kind: str, role: str, body: str, ready: str = "login to server success") -> GoFrp:
        text = (f'serverAddr = "{SERVER_IP}"\nserverPort = {FRPS_PORT}\nauth.token = "{TOKEN}"\nuser = "lab"\n'
                f'natHoleStunServer = "{STUN}"\nloginFailExit = false\nlog.level = "debug"\n{body}\n')
        return await self._frp(kind, "frpc", role, text, ready)

    async def _frp(self, kind: str, program: str, role: str, text: str, ready: Optional[str] = None) -> GoFrp:
        path = writeConfig(program, text)
        if kind == "go":
            from tests.frpbin import frp_binary

            argv = [frp_binary(program), "-c", path]
        else:
            argv = [sys.executable, "-c", _TWISTD, "-n", program, "--config", path]
        ready = ready or ("frps started successfully")
        return await self.spawn(role, f"{kind} {program} ({role})", argv, ready, directory=os.path.dirname(path))

    async def echo(self) -> GoFrp:
        return await self.spawn("owner", "echo", [sys.executable, "-m", "tests.nstraffic", "serve", str(ECHO_PORT)],
                              "echo ready")

    async def send(self, port: int, size: int, timeout: float = 60.0) -> Dict[str, str]:
        """Push ``size`` bytes through 127.0.0.1:``port`` in the visitor's namespace and read the
        echo back; the tool's report as a dict (sent, received, first, total)."""
        proc = await self.spawn("visitor", "send", [sys.executable, "-m", "tests.nstraffic", "send", str(port),
                                                  str(size)], "total", timeout)
        await proc._exit
        words = proc.output.split()
        start = words.index("sent")
        report = dict(zip(words[start::2], words[start + 1::2]))
        return report


def _tempDir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="frptw-natlab-")
