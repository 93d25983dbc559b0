"""Reliability at scale, frptw against Go frp 0.65: connection bursts on every listener, many
connections held through one tcp proxy, and how long a stalled peer is kept.

Run on demand (not a test, not in CI)::

    python bench/bench_burst.py                       # all three parts, 3 repetitions (~15 min)
    python bench/bench_burst.py --parts burst --count 1000 --repeat 3
    python bench/bench_burst.py --parts held --held 10000
    python bench/bench_burst.py --parts stall --stall-cap 90

**burst**: frps with every listener (bind port, HTTP and HTTPS vhosts, tcpmux, dashboard) and
frpc with its admin API, a tcp, http, https, tcpmux and stcp proxy and an stcp visitor, in
front of the ``_load.py`` service.  Against each listener in turn, ``--count`` connects are
issued back to back before any answer is read (``tests/burstprobe.py``; what each sends and
waits for is ``listenerRequests``: a Login on a yamux stream, a routed HTTP request, a
ClientHello echoed by the backend, a CONNECT and an echo, echoes through the tcp proxy and the
visitor, ``GET /healthz``).  Figures per listener: connections served, refused, reset or timed
out, and p50/p99 of connect to first answer.

**held**: ``--held`` echo-checked connections through one tcp proxy, opened 500 at a time from
16 loopback source addresses and then all open at once; RSS and open sockets of frps and frpc
before, with all held, and 5 s and 40 s after they closed (the sockets must be back; RSS shows
what each process gives back; frptw's tap sweeps every 30 s).  ``--malloc-variant`` adds frptw
under ``PYTHONMALLOC=malloc``.

**stall**: raw connections that stop in one phase and then say nothing, all opened at once on
a fresh frps (and frpc, for the visitor-free listeners); the seconds until the server closed
each (``--stall-cap`` means it was still open).  Phases: bind port with nothing sent, a TLS
ClientHello cut short (``0x17`` and 31 bytes), a yamux session that opens no stream, a
request head never finished on the HTTP vhost, a ClientHello cut short on the HTTPS vhost, a
CONNECT head never finished on tcpmux, and a request head never finished on the dashboard.
"""

import os
import select
import socket
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Figure, Run, Session, figure, parser, prose  # noqa: E402
from bench_tcp import open_sockets, rss_mib  # noqa: E402

from tests.burstprobe import DOMAIN, burst, hold, listenerRequests  # noqa: E402
from tests.support import free_port  # noqa: E402

TOKEN = "burst"
LISTENERS = ("bind", "http", "https", "tcpmux", "tcp", "visitor", "admin", "dashboard")
#: Listeners frpc (rather than frps) opens.
ON_FRPC = ("visitor", "admin")


def frps_toml(p: Dict[str, int]) -> str:
    return (f'bindAddr = "127.0.0.1"\nbindPort = {p["bind"]}\nproxyBindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n'
            f'vhostHTTPPort = {p["http"]}\nvhostHTTPSPort = {p["https"]}\ntcpmuxHTTPConnectPort = {p["tcpmux"]}\n'
            f'webServer.addr = "127.0.0.1"\nwebServer.port = {p["dashboard"]}\nlog.level = "warn"\n')


def frpc_toml(p: Dict[str, int], backend: int, full: bool = True) -> str:
    """frpc with the tcp proxy, and when ``full`` the admin API and every other proxy and the
    visitor."""
    top = f'serverAddr = "127.0.0.1"\nserverPort = {p["bind"]}\nauth.token = "{TOKEN}"\nlog.level = "warn"\n'
    local = f'localIP = "127.0.0.1"\nlocalPort = {backend}\n'
    tcp = f'[[proxies]]\nname = "tcp"\ntype = "tcp"\n{local}remotePort = {p["tcp"]}\n'
    if not full:
        return top + tcp
    return (top + f'webServer.addr = "127.0.0.1"\nwebServer.port = {p["admin"]}\n' + tcp
            + f'[[proxies]]\nname = "web"\ntype = "http"\n{local}customDomains = ["{DOMAIN}"]\n'
            + f'[[proxies]]\nname = "secure"\ntype = "https"\n{local}customDomains = ["{DOMAIN}"]\n'
            + f'[[proxies]]\nname = "mux"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\n{local}'
            + f'customDomains = ["{DOMAIN}"]\n'
            + f'[[proxies]]\nname = "secret"\ntype = "stcp"\nsecretKey = "sk"\n{local}'
            + '[[visitors]]\nname = "secret-visitor"\ntype = "stcp"\nserverName = "secret"\nsecretKey = "sk"\n'
            + f'bindAddr = "127.0.0.1"\nbindPort = {p["visitor"]}\n')


class Stack:
    """One repetition's frps + frpc of one implementation, every listener ready."""

    def __init__(self, s: Session, run: Run, impl: str, backend: int, full: bool = True) -> None:
        self.ports = {name: free_port() for name in LISTENERS}
        self.frps = s.spawn_frp(run, impl, "frps", frps_toml(self.ports))
        s.wait_listening(self.ports["bind"], [self.frps], self.frps.spawned, f"{impl} frps listening")
        self.frpc = s.spawn_frp(run, impl, "frpc", frpc_toml(self.ports, backend, full))
        requests = listenerRequests()
        for name in (LISTENERS if full else ("tcp",)):
            port, steps = self.ports[name], requests[name]
            s.poll(lambda: burst("127.0.0.1", port, steps, 1, 2.0)["served"] == 1, [self.frps, self.frpc],
                   time.perf_counter(), f"{impl} {name} serving", 0.05)


def burst_part(s: Session, backend: int, count: int) -> List[Figure]:
    requests = listenerRequests()

    def run(impl: str) -> dict:
        with s.one_run(f"burst-{impl}-") as r:
            stack = Stack(s, r, impl, backend)
            results = {}
            for name in LISTENERS:
                results[name] = burst("127.0.0.1", stack.ports[name], requests[name], count, s.args.timeout)
            return results

    runs = s.alternate("burst", run)
    figures = []
    for name in LISTENERS:
        where = "frpc" if name in ON_FRPC else "frps"
        figures.append(figure(f"{name} ({where}): not served of {count}", "", True, runs,
                              lambda r, n=name: float(r[n]["count"] - r[n]["served"])))
        for q in ("p50", "p99"):
            figures.append(figure(f"{name}: {q} connect to first answer", "ms", True, runs,
                                  lambda r, n=name, q=q: r[n][f"{q}_ms"] or 0.0))
    return figures


def held_part(s: Session, backend: int, count: int, impls: List[str]) -> List[Figure]:
    def run(impl: str) -> dict:
        with s.one_run(f"held-{impl}-") as r:
            stack = Stack(s, r, impl, backend, full=False)
            sides = {"frps": stack.frps.pid, "frpc": stack.frpc.pid}
            time.sleep(1.0)  # measurement spacing only: let start-up garbage settle before the baseline
            before = {k: (rss_mib(pid), open_sockets(pid)) for k, pid in sides.items()}
            peak: Dict[str, tuple] = {}

            def measure(figures: dict) -> None:
                peak.update({k: (rss_mib(pid), open_sockets(pid)) for k, pid in sides.items()})
                peak["probe"] = figures

            result = hold("127.0.0.1", stack.ports["tcp"], count, 500, s.args.timeout, 16, release=measure)
            end = time.monotonic() + s.args.timeout
            while time.monotonic() < end and any(open_sockets(pid) > before[k][1] for k, pid in sides.items()):
                time.sleep(0.2)
            time.sleep(5.0)  # measurement spacing only: what the processes give back within 5 s
            after = {k: (rss_mib(pid), open_sockets(pid)) for k, pid in sides.items()}
            time.sleep(35.0)  # and within 40 s (Go returns memory to the system in the background)
            later = {k: rss_mib(pid) for k, pid in sides.items()}
            out = {"served": result["served"], "alive": result["alive_at_release"], "open_ms_p99": result["p99_ms"],
                   "errors": result["errors"]}
            for k in sides:
                out[f"{k}_rss"] = (before[k][0], peak[k][0], after[k][0], later[k])
                out[f"{k}_sockets"] = (before[k][1], peak[k][1], after[k][1])
            return out

    runs = s.alternate("held", run, impls)
    figures = [figure(f"held connections served of {count}", "", False, runs, lambda r: float(r["served"])),
               figure("alive at release", "", False, runs, lambda r: float(r["alive"]))]
    for side in ("frps", "frpc"):
        figures.append(figure(f"{side} RSS before", "MiB", True, runs, lambda r, k=side: r[f"{k}_rss"][0]))
        figures.append(figure(f"{side} RSS with all held", "MiB", True, runs, lambda r, k=side: r[f"{k}_rss"][1]))
        figures.append(figure(f"{side} RSS 5 s after close", "MiB", True, runs, lambda r, k=side: r[f"{k}_rss"][2]))
        figures.append(figure(f"{side} RSS 40 s after close", "MiB", True, runs, lambda r, k=side: r[f"{k}_rss"][3]))
        figures.append(figure(f"{side} RSS 40 s after close - before", "MiB", True, runs,
                              lambda r, k=side: r[f"{k}_rss"][3] - r[f"{k}_rss"][0]))
        figures.append(figure(f"{side} sockets with all held", "", True, runs,
                              lambda r, k=side: float(r[f"{k}_sockets"][1])))
        figures.append(figure(f"{side} sockets after close - before", "", True, runs,
                              lambda r, k=side: float(r[f"{k}_sockets"][2] - r[f"{k}_sockets"][0])))
    return figures


#: The phase whose stall ends a yamux stream rather than a TCP connection.
STALLED_STREAM = "bind port, yamux stream with half a Login (stream closed)"


def _stall_phases() -> Dict[str, tuple]:
    """Per phase: the listener and the bytes sent before going silent."""
    from frptw.wire import yamux as ywire

    hello = listenerRequests()["https"][0][0]
    return {
        "bind port, nothing sent": ("bind", b""),
        "bind port, TLS ClientHello cut short": ("bind", b"\x17" + hello[:31]),
        "bind port, yamux session opening no stream": ("bind", ywire.encode_header(ywire.FrameType.PING,
                                                                                   ywire.Flag.SYN, 0, 7)),
        STALLED_STREAM: ("bind", ywire.encode_header(
            ywire.FrameType.WINDOW_UPDATE, ywire.Flag.SYN, 1, 0) + ywire.encode_header(
            ywire.FrameType.DATA, 0, 1, 5) + b"o\x00\x00\x00\x00"),
        "HTTP vhost, request head unfinished": ("http", f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\n".encode()),
        "HTTPS vhost, ClientHello cut short": ("https", hello[:31]),
        "tcpmux, CONNECT head unfinished": ("tcpmux", f"CONNECT {DOMAIN}:443 HTTP/1.1\r\n".encode()),
        "dashboard, request head unfinished": ("dashboard", b"GET /healthz HTTP/1.1\r\n"),
    }


def _stream_ended(received: bytes) -> bool:
    """Whether ``received`` (what frps sent on a yamux session) has a frame ending stream 1
    (FIN or RST): a stalled yamux stream is closed by that, its TCP connection stays."""
    from frptw.wire import yamux as ywire

    at = 0
    while len(received) - at >= ywire.HEADER_SIZE:
        header = ywire.decode_header(received, at)
        if header.stream_id == 1 and header.flags & (ywire.Flag.FIN | ywire.Flag.RST):
            return True
        at += ywire.HEADER_SIZE + (header.length if header.type == ywire.FrameType.DATA else 0)
    return False


def _stalled_until_closed(socks: Dict[str, socket.socket], streams: set, cap: float) -> Dict[str, float]:
    """Seconds until each socket saw EOF or a reset (reading what comes, as a stalled peer's
    kernel would, never answering), or for those in ``streams``, until frps ended their yamux
    stream 1; ``cap`` if still open then."""
    start = time.perf_counter()
    closed: Dict[str, float] = {}
    open_ = dict(socks)
    received = {name: b"" for name in socks}
    while open_ and time.perf_counter() - start < cap:
        ready, _, _ = select.select(list(open_.values()), [], [], 0.2)
        for sock in ready:
            name = next(k for k, v in open_.items() if v is sock)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            received[name] += data
            if not data or (name in streams and _stream_ended(received[name])):
                closed[name] = time.perf_counter() - start
                del open_[name]
                sock.close()
    for name, sock in open_.items():
        closed[name] = cap
        sock.close()
    return closed


def stall_part(s: Session, backend: int, cap: float) -> List[Figure]:
    phases = _stall_phases()

    def run(impl: str) -> dict:
        with s.one_run(f"stall-{impl}-") as r:
            stack = Stack(s, r, impl, backend)
            socks = {}
            for name, (listener, data) in phases.items():
                sock = socket.create_connection(("127.0.0.1", stack.ports[listener]), timeout=5)
                if data:
                    sock.sendall(data)
                socks[name] = sock
            return _stalled_until_closed(socks, {STALLED_STREAM}, cap)

    runs = s.alternate("stall", run)
    return [figure(f"{name}: closed after", "s", True, runs, lambda r, n=name: r[n]) for name in phases]


PARTS: Dict[str, Callable] = {"burst": burst_part, "held": held_part, "stall": stall_part}


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--parts", default="burst,held,stall", help="some of burst, held, stall (default all)")
    p.add_argument("--count", type=int, default=1000, help="simultaneous connects per listener (default 1000)")
    p.add_argument("--held", type=int, default=10000, help="connections held through one tcp proxy (default 10000)")
    p.add_argument("--malloc-variant", action="store_true",
                   help="held: also frptw under PYTHONMALLOC=malloc (what the C allocator gives back)")
    p.add_argument("--stall-cap", type=float, default=90.0, help="seconds a stalled connection is watched (default 90)")
    args = p.parse_args()
    parts = [x for x in args.parts.split(",") if x]
    if any(x not in PARTS for x in parts):
        p.error(f"--parts: some of {', '.join(PARTS)}")
    # results/<date>-burst.md for a whole run, -burst-part-held.md (say) for a run of some parts
    name = "burst" if set(parts) == set(PARTS) else "burst-part-" + "-".join(parts)
    with Session(name, "Bursts, 10 000 held connections and stalled peers: frptw and Go frp 0.65", args) as s:
        s.bench.start_backend()
        backend = s.bench.backend_port
        impls = ["go", "tw"]
        if "burst" in parts:
            s.table(f"burst: {args.count} simultaneous connects per listener", burst_part(s, backend, args.count),
                    impls, "Not served = refused + reset + timed out (the kinds are in the log of the run).")
        if "held" in parts:
            held = impls + (["tw-malloc"] if args.malloc_variant else [])
            s.table(f"held: {args.held} connections through one tcp proxy", held_part(s, backend, args.held, held),
                    held)
        if "stall" in parts:
            s.table(f"stall: seconds until a stalled peer is closed (cap {args.stall_cap:.0f} s = still open)",
                    stall_part(s, backend, args.stall_cap), impls)
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
