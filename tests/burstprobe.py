"""Many simultaneous connections to one listener, measured from outside the process under test.

Shared by ``tests/test_burst.py`` (CI sizes) and ``bench/bench_burst.py`` (1000 per listener,
10 000 held, frptw beside Go frp).  Plain non-blocking sockets on one ``selectors`` loop, no
Twisted, so that it runs as its own process (``python -m tests.burstprobe ...``) and the load
never shares an interpreter with the frps or frpc it measures.

Two shapes:

* :func:`burst`: ``count`` connects issued back to back, before any answer is read; each sends
  ``payload`` once connected and is *served* when the bytes it got back contain ``expect``.  A
  connection's time runs from its ``connect()`` to that answer.  Failures are counted by kind:
  ``refused`` (ECONNREFUSED: the accept queue overflowed, or nothing listens), ``reset``
  (ECONNRESET, or closed before the answer), ``timeout`` (no answer in ``timeout`` seconds).
* :func:`hold`: ``count`` echo-checked connections opened at most ``window`` at a time and kept
  open, so that ``count`` are open at once; the caller measures the processes under test, then
  the connections are checked alive and closed.

``sources`` > 1 spreads the connections over that many loopback source addresses (127.0.0.2,
127.0.0.3, ...; all of 127/8 is loopback), so that 10 000 connections and their leftovers in
TIME_WAIT never run out of ephemeral ports.
"""

import argparse
import errno
import json
import selectors
import socket
import sys
import time
from typing import Dict, List, Optional, Tuple

from frptw.transport.sockets import raiseFileLimit

#: What the echo services of the tests and benches echo back, and what an echo probe sends
#: (after the ``_load.py`` service's mode byte ``E``, which the test's plain echo also echoes).
ECHO = b"0123456789abcdef"


#: The virtual host every vhost probe asks for.
DOMAIN = "burst.test"
#: What the HTTP backend of the tests and benches answers (its body).
HTTP_BODY = b"burst-ok"


#: A probe connection's exchanges: (what it sends, what the answer must contain), in order.
Steps = List[Tuple[bytes, bytes]]


def stepArguments(steps: Steps) -> List[str]:
    """``steps`` as ``burstprobe burst`` arguments."""
    return [arg for send, expect in steps for arg in ("--payload", send.hex(), "--expect", expect.hex())]


def listenerRequests(domain: str = DOMAIN) -> Dict[str, Steps]:
    """Per listener kind, what one probe connection sends and what the answer must contain.
    The time measured is until the first answer; the connection is served when every step's
    answer is in.

    * ``bind``: frps's bind port: a yamux stream (frp's default tcpMux) carrying a ``Login``
      with a wrong key; served by the ``LoginResp`` that refuses it.
    * ``http``: a request for ``domain`` on the HTTP vhost, routed through frpc to the HTTP
      backend, whose body is :data:`HTTP_BODY`.
    * ``https``: a ClientHello naming ``domain`` on the HTTPS vhost, routed through frpc to an
      echo backend: it comes back whole.
    * ``tcpmux``: an HTTP CONNECT for ``domain`` on the tcpmux port, frps's 200, then an echo
      through the tunnel.
    * ``tcp`` / ``visitor``: a tcp proxy's remote port and an stcp visitor's bind port, each in
      front of an echo service: mode byte and :data:`ECHO`, then the echo.
    * ``admin`` / ``dashboard``: frpc's admin API and frps's dashboard: ``GET /healthz``, 200.
    """
    from frptw.wire import messages as m
    from frptw.wire import yamux as ywire
    from tests.fakes import client_hello

    login = m.encode_message(m.Login(version="0.65.0", privilege_key="wrong", timestamp=1, pool_count=1))
    opening = ywire.encode_header(ywire.FrameType.WINDOW_UPDATE, ywire.Flag.SYN, 1, 0)
    data = ywire.encode_header(ywire.FrameType.DATA, 0, 1, len(login)) + login
    hello = client_hello(domain)
    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    echo = (b"E" + ECHO, ECHO)
    return {
        "bind": [(opening + data, b'"version"')],
        "http": [(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode(), HTTP_BODY)],
        "https": [(hello, hello)],
        "tcpmux": [(f"CONNECT {domain}:443 HTTP/1.1\r\nHost: {domain}:443\r\n\r\n".encode(), b" 200 "), echo],
        "tcp": [echo],
        "visitor": [echo],
        "admin": [(healthz, b" 200 ")],
        "dashboard": [(healthz, b" 200 ")],
    }


def percentile(sorted_values: List[float], point: float) -> Optional[float]:
    """The ``point`` percentile (nearest rank) of already sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * point // 100))
    return sorted_values[int(rank) - 1]


class _Conn:
    __slots__ = ("sock", "started", "got", "step", "connected", "answered")

    def __init__(self, sock: socket.socket, started: float) -> None:
        self.sock = sock
        self.started = started
        self.got = b""
        self.step = 0
        self.connected = False
        self.answered = 0.0


class _Loop:
    """Connections on one selector: connect, then for each of ``steps`` send its bytes and read
    until the answer contains its expected bytes."""

    def __init__(self, host: str, port: int, steps: Steps, sources: int, keep: bool) -> None:
        self.addr = (host, port)
        self.keep = keep
        self.steps = steps
        self.sources = sources
        self.sel = selectors.DefaultSelector()
        self.errors: Dict[str, int] = {}
        self.durations: List[float] = []
        self.served: List[_Conn] = []
        self.pending = 0
        self.opened = 0

    def open(self) -> None:
        s = socket.socket(socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET)
        s.setblocking(False)
        if self.sources > 1:
            s.bind((f"127.0.0.{2 + self.opened % self.sources}", 0))
        conn = _Conn(s, time.perf_counter())
        self.opened += 1
        self.pending += 1
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            self.fail(conn, err, registered=False)
            return
        self.sel.register(s, selectors.EVENT_WRITE, conn)

    def fail(self, conn: _Conn, why, registered: bool = True) -> None:
        if isinstance(why, int):
            why = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset"}.get(why, errno.errorcode.get(why, str(why)))
        self.errors[why] = self.errors.get(why, 0) + 1
        self.end(conn, registered)
        conn.sock.close()

    def end(self, conn: _Conn, registered: bool = True) -> None:
        self.pending -= 1
        if registered:
            self.sel.unregister(conn.sock)

    def step(self, conn: _Conn) -> None:
        s = conn.sock
        if not conn.connected:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(conn, err)
                return
            conn.connected = True
            s.send(self.steps[0][0])  # small: fits a fresh socket buffer
            self.sel.modify(s, selectors.EVENT_READ, conn)
            return
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(conn, e.errno)
            return
        if not data:
            self.fail(conn, "reset")  # closed before the answer
            return
        conn.got += data
        if self.steps[conn.step][1] not in conn.got:
            return
        if conn.step == 0:
            conn.answered = time.perf_counter() - conn.started
        conn.step += 1
        conn.got = b""
        if conn.step < len(self.steps):
            s.send(self.steps[conn.step][0])
        else:
            self.durations.append(conn.answered)
            self.end(conn)
            if self.keep:
                self.served.append(conn)
            else:
                s.close()

    def run(self, until: float) -> None:
        """Step connections until none is pending or ``until`` (perf_counter) passes, then
        count those still pending as ``timeout``."""
        while self.pending and time.perf_counter() < until:
            for key, _ in self.sel.select(timeout=min(0.1, max(0.0, until - time.perf_counter()))):
                self.step(key.data)
        self.expire()

    def expire(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.fail(key.data, "timeout")

    def figures(self, count: int, elapsed: float) -> dict:
        durations = sorted(self.durations)
        ms = {f"p{p}_ms": (round(v * 1e3, 2) if v is not None else None)
              for p, v in ((50, percentile(durations, 50)), (99, percentile(durations, 99)),
                           (100, percentile(durations, 100)))}
        return {"count": count, "served": len(durations), "errors": dict(self.errors),
                "seconds": round(elapsed, 3), **ms}


def burst(host: str, port: int, steps: Steps, count: int, timeout: float, sources: int = 1) -> dict:
    """``count`` simultaneous connects to ``host:port``; see the module docstring."""
    loop = _Loop(host, port, steps, sources, keep=False)
    start = time.perf_counter()
    for _ in range(count):
        loop.open()
    loop.run(start + timeout)
    return loop.figures(count, time.perf_counter() - start)


def hold(host: str, port: int, count: int, window: int, timeout: float, sources: int,
         release=None) -> dict:
    """Open ``count`` echo connections (``window`` connecting at a time), keep them open, call
    ``release(figures)`` (default: print them and wait for a line on stdin), then check that
    each is still open, close them all and return the figures with ``alive_at_release``."""
    loop = _Loop(host, port, [(b"E" + ECHO, ECHO)], sources, keep=True)
    start = time.perf_counter()
    until = start + timeout
    while loop.opened < count and time.perf_counter() < until:
        while loop.opened < count and loop.pending < window:
            loop.open()
        for key, _ in loop.sel.select(timeout=0.1):
            loop.step(key.data)
    loop.run(until)
    figures = loop.figures(count, time.perf_counter() - start)
    if release is None:
        emit(figures)
        sys.stdin.readline()
    else:
        release(figures)
    alive = 0
    for conn in loop.served:
        try:
            alive += conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        conn.sock.close()
    figures["alive_at_release"] = alive
    return figures


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.burstprobe", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("burst", help="simultaneous connects, one request each; one JSON line")
    b.add_argument("--payload", required=True, action="append", help="hex of what each connection sends "
                   "(repeat for further steps, each sent once the answer to the one before is in)")
    b.add_argument("--expect", required=True, action="append", help="hex of what its answer must contain "
                   "(one per --payload)")
    h = sub.add_parser("hold", help="echo connections held open; a JSON line when up, one after release")
    h.add_argument("--window", type=int, default=500, help="connects in flight at once (default 500)")
    for s in (b, h):
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, required=True)
        s.add_argument("-n", "--count", type=int, required=True)
        s.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole run (default 60)")
        s.add_argument("--sources", type=int, default=1, help="loopback source addresses (default 1)")
    args = p.parse_args(argv)
    raiseFileLimit()  # 10 000 connections need more than the usual 1024 descriptors
    if args.command == "burst":
        if len(args.payload) != len(args.expect):
            p.error("one --expect per --payload")
        steps = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in zip(args.payload, args.expect)]
        emit(burst(args.host, args.port, steps, args.count, args.timeout, args.sources))
    else:
        emit(hold(args.host, args.port, args.count, args.window, args.timeout, args.sources))


if __name__ == "__main__":
    main()
