"""Process and socket settings frpc and frps both apply: the open-file limit and TCP keep-alive."""

import resource
import socket
from typing import Optional

from frptw.logs import FrpLogger

log = FrpLogger()


def raiseFileLimit() -> Optional[int]:
    """Raise the soft limit of open files to the hard limit (design lesson 5: descriptor
    exhaustion is a top frp complaint); return the new soft limit, or None if it could not be
    raised (logged, not fatal)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft if soft == hard else None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log.warn("cannot raise the open file limit from {soft} to {hard}: {error}", soft=soft, hard=hard, error=e)
        return None
    return hard


def setKeepalive(transport, seconds: int) -> None:
    """TCP keep-alive probes every ``seconds`` on a TCP transport (frps
    ``transport.tcp_keepalive``, frpc ``transport.dial_server_keepalive``; negative disables),
    like Go's keep-alive period, which sets both the idle time and the probe interval."""
    if seconds is None or seconds < 0:
        return
    try:
        transport.setTcpKeepAlive(1)
        sock = transport.getHandle()
        for option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if seconds > 0 and hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), seconds)
    except (AttributeError, OSError) as e:
        log.debug("cannot set TCP keep-alive: {error}", error=e)
