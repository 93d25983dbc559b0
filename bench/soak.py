"""Soak: mixed tcp/udp/http/stcp traffic with connection churn through frps and frpc for
minutes; RSS slope, open descriptors and errors.

Run on demand (not a test, not in CI)::

    python bench/soak.py                       # 10 minutes, frptw only
    python bench/soak.py --minutes 1 --no-write
    python bench/soak.py --impls go,tw         # Go frp 0.65 alongside, at the same time

Per implementation, one frps (with an HTTP vhost) and one frpc carry four proxies: tcp, udp,
http (a custom domain) and stcp, and a second frpc is the stcp visitor.  The services behind
them are threads of this process.  Workers (threads, each pausing ``--pause`` seconds between
operations) keep all four busy for ``--minutes``, every operation on a **new connection**
(churn): a 16 KiB echo and a 256 KiB checked download over tcp and over stcp, a request on a
new keep-alive connection through the vhost (1 KiB to 256 KiB, checked), and udp echoes.
With ``--impls go,tw`` both run side by side, so both see the same machine load.

Every ``--interval`` seconds each frp process's ``VmRSS`` and open descriptors are sampled.
Reported per process: RSS at the start and end, its **slope after warm-up** (least squares
over the samples after the first ``--warmup`` fraction of the run, MiB/min; the goal is flat,
< 1 MiB/min), descriptors at start / peak / end; per kind of traffic: operations, errors
(a refused, reset or short transfer, or a checksum mismatch) and udp echoes lost; and the
warning, error and traceback lines the frp processes logged.
"""

import os
import random
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _peers import (  # noqa: E402
    PROBE,
    HttpService,
    TcpService,
    UdpSink,
    http_get_paced,
    open_fds,
    pattern_sha,
    read_paced,
    rssKiB,
    udp_probe,
)
from _rows import LABELS, Run, Session, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, Child, frpc_common  # noqa: E402

from tests.support import free_port  # noqa: E402

DOMAIN = "soak.example"
SECRET = "frptw-soak"


def owner_toml(bind_port: int, remote: int, remote_udp: int, ports: Dict[str, int]) -> str:
    return frpc_common(bind_port, CONFIGS["defaults"]) + (
        f'\n[[proxies]]\nname = "soak-tcp"\ntype = "tcp"\nremotePort = {remote}\n'
        f'localIP = "127.0.0.1"\nlocalPort = {ports["tcp"]}\n'
        f'\n[[proxies]]\nname = "soak-udp"\ntype = "udp"\nremotePort = {remote_udp}\n'
        f'localIP = "127.0.0.1"\nlocalPort = {ports["udp"]}\n'
        f'\n[[proxies]]\nname = "soak-http"\ntype = "http"\ncustomDomains = ["{DOMAIN}"]\n'
        f'localIP = "127.0.0.1"\nlocalPort = {ports["http"]}\n'
        f'\n[[proxies]]\nname = "soak-stcp"\ntype = "stcp"\nsecretKey = "{SECRET}"\n'
        f'localIP = "127.0.0.1"\nlocalPort = {ports["tcp"]}\n')


def visitor_toml(bind_port: int, port: int) -> str:
    return frpc_common(bind_port, CONFIGS["defaults"]) + (
        f'\n[[visitors]]\nname = "soak-visitor"\ntype = "stcp"\nserverName = "soak-stcp"\n'
        f'secretKey = "{SECRET}"\nbindAddr = "127.0.0.1"\nbindPort = {port}\n')


@dataclass
class Counts:
    ops: int = 0
    errors: int = 0
    lost: int = 0
    first_errors: List[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{time.strftime('%H:%M:%S')} {text}")


@dataclass
class Stack:
    """One implementation's frps, frpc and visitor, and what the workers count on it."""

    impl: str
    procs: Dict[str, Child]
    ports: Dict[str, int]
    counts: Dict[str, Counts] = field(default_factory=dict)
    samples: List[Tuple[float, Dict[str, int], Dict[str, int]]] = field(default_factory=list)

    def count(self, kind: str) -> Counts:
        return self.counts.setdefault(kind, Counts())


def tcp_echo(port: int) -> None:
    data = random.randbytes(16 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"E\n" + data)
        got, sha = read_paced(s, len(data), 0, deadline=time.monotonic() + 15)
    if got != len(data):
        raise OSError(f"echo: {got} of {len(data)} bytes back")


def tcp_download(port: int, n: int = 256 * 1024) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"D %d\n" % n)
        got, sha = read_paced(s, n, 0, deadline=time.monotonic() + 15)
    if got != n or sha != pattern_sha(n):
        raise OSError(f"download: {got} of {n} bytes" + (", corrupted" if got == n else ""))


def http_get(port: int) -> None:
    n = random.choice((1024, 16 * 1024, 256 * 1024))
    got, sha = http_get_paced(port, DOMAIN, n, 0, 15)
    if got != n or sha != pattern_sha(n):
        raise OSError(f"http: {got} of {n} bytes" + (", corrupted" if got == n else ""))


def udp_echoes(port: int, counts: Counts, n: int = 20) -> None:
    """``n`` probes on a new socket (a new user address each time: frp's per-user state)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.connect(("127.0.0.1", port))
        for _ in range(n):
            try:
                s.send(PROBE)
                if s.recv(64) != PROBE:
                    counts.lost += 1
            except socket.timeout:
                counts.lost += 1


def worker(stack: Stack, kind: str, op: Callable[[], None], end: float, pause: float) -> None:
    counts = stack.count(kind)
    while time.monotonic() < end:
        try:
            op()
        except OSError as e:
            counts.error(f"{type(e).__name__}: {e}")
        counts.ops += 1
        time.sleep(pause)


def slope_mib_per_min(points: List[Tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) points, in MiB per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    cov = sum((t - mx) * (v - my) for t, v in points)
    return cov / var * 60 / 1024 if var else float("nan")


def log_lines(child: Child) -> Dict[str, int]:
    """Warnings, errors and tracebacks in a process's log (Go's [W]/[E], twisted's #warn/#error)."""
    counts = {"warn": 0, "error": 0, "traceback": 0}
    try:
        with open(child.log_path, errors="replace") as f:
            for line in f:
                if "[W]" in line or "#warn]" in line:
                    counts["warn"] += 1
                elif "[E]" in line or "#error]" in line or "#critical]" in line:
                    counts["error"] += 1
                if "Traceback" in line:
                    counts["traceback"] += 1
    except OSError:
        pass
    return counts


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the traffic runs (default 10)")
    p.add_argument("--impls", default="tw", help="go and/or tw, run side by side (default tw)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of the run left out of the slope (0.2)")
    p.add_argument("--pause", type=float, default=0.05, help="seconds each worker waits between operations")
    args = p.parse_args()
    impls = [x for x in args.impls.split(",") if x]
    if not impls or any(x not in ("go", "tw") for x in impls):
        p.error("--impls: go and/or tw")
    services = {"tcp": TcpService(), "http": HttpService(), "udp": UdpSink()}
    ports = {kind: service.port for kind, service in services.items()}

    with Session("soak", "Soak: mixed traffic with churn, RSS slope, descriptors, errors", args) as s:
        s.method = (f"{args.minutes:g} minutes of traffic, {', '.join(impls)} side by side; samples every "
                    f"{args.interval:g} s; slope by least squares after the first {args.warmup:.0%} of the run")
        stacks = [start_stack(s, impl, ports) for impl in impls]
        duration = args.minutes * 60
        start = time.monotonic()
        end = start + duration
        threads = []
        for st in stacks:
            p_ = st.ports
            ops = {
                "tcp echo": lambda p_=p_: tcp_echo(p_["tcp"]),
                "tcp download": lambda p_=p_: tcp_download(p_["tcp"]),
                "http": lambda p_=p_: http_get(p_["http"]),
                "stcp echo": lambda p_=p_: tcp_echo(p_["stcp"]),
                "stcp download": lambda p_=p_: tcp_download(p_["stcp"]),
            }
            ops["udp"] = lambda st=st, p_=p_: udp_echoes(p_["udp"], st.count("udp"))
            for kind, op in ops.items():
                threads.append(threading.Thread(target=worker, args=(st, kind, op, end, args.pause), daemon=True))
        for t in threads:
            t.start()
        while True:
            now = time.monotonic()
            for st in stacks:
                rss, fds = {}, {}
                for name, child in st.procs.items():
                    if child.popen.poll() is not None:
                        raise SystemExit(f"{st.impl} {name} exited (rc {child.popen.returncode})\n{child.tail()}")
                    rss[name], fds[name] = rssKiB(child.pid), open_fds(child.pid)
                st.samples.append((now - start, rss, fds))
            if now >= end:
                break
            print(f"soak: {now - start:5.0f} s " + "; ".join(
                f"{st.impl} " + " ".join(f"{n} {st.samples[-1][1][n] / 1024:.1f}M/{st.samples[-1][2][n]}fd"
                                          for n in st.procs) for st in stacks), file=sys.stderr, flush=True)
            time.sleep(max(0.0, min(args.interval, end - time.monotonic())))
        for t in threads:
            t.join(60)
        for st in stacks:
            report(s, st, args.warmup * duration)
        s.write(prose(__doc__))
    for service in services.values():
        service.close()
    return 0


def start_stack(s: Session, impl: str, service_ports: Dict[str, int]) -> Stack:
    """frps (with a vhost), the owner frpc and the visitor, each proxy proven by one operation."""
    run = Run(tempfile.mkdtemp(prefix=f"{impl}-", dir=s.workdir))  # its processes end with the session
    vhost = free_port()
    frps, bind_port, _ = s.start_frps(run, impl, CONFIGS["defaults"], f"vhostHTTPPort = {vhost}\n")
    remote, remote_udp, visitor_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    frpc = s.spawn_frp(run, impl, "frpc", owner_toml(bind_port, remote, remote_udp, service_ports))
    visitor = s.spawn_frp(run, impl, "frpc", visitor_toml(bind_port, visitor_port), "visitor")
    st = Stack(impl, {"frps": frps, "frpc": frpc, "visitor": visitor},
               {"tcp": remote, "udp": remote_udp, "http": vhost, "stcp": visitor_port})
    probes = {
        "tcp": lambda: _ok(lambda: tcp_echo(remote)),
        "http": lambda: _ok(lambda: http_get(vhost)),
        "stcp": lambda: _ok(lambda: tcp_echo(visitor_port)),
        "udp": lambda: udp_probe(remote_udp, 0.3),
    }
    for kind, probe in probes.items():
        s.poll(probe, run.children, time.perf_counter(), f"{impl} {kind} path up", 0.2)
    return st


def _ok(probe: Callable[[], None]) -> bool:
    try:
        probe()
        return True
    except OSError:
        return False


def report(s: Session, st: Stack, warmup: float) -> None:
    rows = ["| process | RSS start (MiB) | RSS end (MiB) | RSS peak (MiB) | slope after warm-up (MiB/min) "
            "| fds start / peak / end | log warn / error / traceback |", "|---|---|---|---|---|---|---|"]
    for name, child in st.procs.items():
        rss = [(t, r[name]) for t, r, _ in st.samples]
        fds = [f[name] for _, _, f in st.samples]
        slope = slope_mib_per_min([(t, v) for t, v in rss if t >= warmup])
        logs = log_lines(child)
        rows.append(f"| {name} | {rss[0][1] / 1024:.1f} | {rss[-1][1] / 1024:.1f} | "
                    f"{max(v for _, v in rss) / 1024:.1f} | {slope:+.2f} | {fds[0]} / {max(fds)} / {fds[-1]} | "
                    f"{logs['warn']} / {logs['error']} / {logs['traceback']} |")
    rows += ["", "| traffic | operations | errors | udp echoes lost | first errors |", "|---|---|---|---|---|"]
    for kind, c in st.counts.items():
        lost = f"{c.lost} of {c.ops * 20}" if kind == "udp" else "-"
        rows.append(f"| {kind} | {c.ops:,} | {c.errors} | {lost} | {'; '.join(c.first_errors) or '-'} |")
    series = " ".join(f"{t / 60:.1f}:{r['frps'] / 1024:.0f}/{r['frpc'] / 1024:.0f}"
                      for t, r, _ in st.samples[:: max(1, len(st.samples) // 20)])
    rows += ["", f"RSS frps/frpc (MiB) over the run (minute:frps/frpc): {series}"]
    s.sections.append(f"## {LABELS[st.impl]}\n\n" + "\n".join(rows))
    print("\n" + s.sections[-1] + "\n", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
