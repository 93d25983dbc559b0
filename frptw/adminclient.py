"""Client side of frpc's admin API, for ``frptw status|reload|stop`` (frp's ``frpc status``,
``frpc reload``, ``frpc stop``; ``pkg/sdk/client`` and ``cmd/frpc/sub/admin.go`` in frp 0.65).

Like frp's commands: the address and credentials come from the configuration file's
``webServer`` settings, requests go over plain HTTP, any answer but 200 is the error
``api status code [N]``, and the status table is printed the way frp's table library does it
(every column padded to its widest cell plus two spaces, the last one too).
"""

import base64
import json
import re
from typing import Dict, List, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import ConnectionRefusedError
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from frptw.config import WebServerConfig
from frptw.errors import FrpError

#: frp's proxy types in the order ``frpc status`` prints them.
STATUS_TYPE_ORDER = ("tcp", "udp", "tcpmux", "http", "https", "stcp", "sudp", "xtcp")
STATUS_COLUMNS = ("Name", "Status", "LocalAddr", "Plugin", "RemoteAddr", "Error")
#: ``--api-timeout``'s default (frp: 30 s).
DEFAULT_TIMEOUT = 30.0


class AdminAPIError(FrpError):
    """A failed admin API call; the text is what frp's commands print."""


def parseDuration(text: str) -> float:
    """Seconds from a Go duration (``30s``, ``500ms``, ``1m30s``) or a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'time: invalid duration "{text}"')
    return sum(float(n) * units[u] for n, u in parts)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """rodaine/table's output: left-aligned columns, each padded to its widest cell + 2."""
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = ["".join(str(cell).ljust(width) + "  " for cell, width in zip(row, widths)) for row in [columns, *rows]]
    return "\n".join(lines) + "\n"


def statusReport(document: Dict[str, List[dict]]) -> str:
    """What ``frpc status`` prints for a ``GET /api/status`` document."""
    out = ["Proxy Status...\n\n"]
    for kind in STATUS_TYPE_ORDER:
        items = document.get(kind) or []
        if not items:
            continue
        rows = [[i.get("name", ""), i.get("status", ""), i.get("local_addr", ""), i.get("plugin", ""),
                 i.get("remote_addr", ""), i.get("err", "")] for i in items]
        out.append(kind.upper() + "\n" + table(STATUS_COLUMNS, rows) + "\n")
    return "".join(out)


class AdminClient:
    """Calls one frpc's admin API; each call fires with the body text or fails with AdminAPIError."""

    def __init__(self, reactor, web: WebServerConfig, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._reactor = reactor
        self._agent = Agent(reactor)
        host = f"[{web.addr}]" if ":" in web.addr else web.addr
        self.base = f"http://{host}:{web.port}"
        self._headers = Headers()
        if web.user or web.password:
            token = base64.b64encode(f"{web.user}:{web.password}".encode("utf-8"))
            self._headers.addRawHeader(b"authorization", b"Basic " + token)
        self._timeout = timeout

    async def call(self, method: str, path: str) -> str:
        url = self.base + path
        d: Deferred = self._agent.request(method.encode(), url.encode(), self._headers)
        d.addTimeout(self._timeout, self._reactor)
        verb = method[0] + method[1:].lower()
        try:
            response = await d
            body = await readBody(response)
        except Exception as e:  # connection refused, timeout...: said the way Go's client does
            raise AdminAPIError(f'{verb} "{url}": {_describe(e)}') from None
        if response.code != 200:
            raise AdminAPIError(f"api status code [{response.code}]")
        return body.decode("utf-8", "replace")

    async def status(self) -> Dict[str, List[dict]]:
        content = await self.call("GET", "/api/status")
        try:
            document = json.loads(content)
            if not isinstance(document, dict):
                raise ValueError(content)
        except ValueError:
            raise AdminAPIError(f"unmarshal http response error: {content.strip()}") from None
        return document

    async def reload(self, strict: bool) -> None:
        await self.call("GET", "/api/reload" + ("?strictConfig=true" if strict else ""))

    async def stop(self) -> None:
        await self.call("POST", "/api/stop")


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(error, DeferredTimeout):
        return "context deadline exceeded"
    reasons = getattr(error, "reasons", None)  # twisted.web's ResponseFailed and friends
    if reasons:
        return "; ".join(r.getErrorMessage() for r in reasons)
    return str(error) or type(error).__name__
