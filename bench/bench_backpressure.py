"""Backpressure, frptw against Go frp 0.65: RSS growth of frps and frpc behind a slow reader.

Run on demand (not a test, not in CI)::

    python bench/bench_backpressure.py [--repeat 3] [--mib 64] [--rate 4] [--udp-seconds 10]
        [--scenarios http,stcp-down,stcp-up,udp,sudp]

Each repetition starts frps and frpc (and, for stcp and sudp, a visitor frpc) fresh, with
frp's defaults (TLS and tcp mux on), proves the path with a small transfer, then samples
``VmRSS`` of every frp process every 20 ms while one transfer runs; the figure is each
process's **peak growth** over its value just before the transfer.  Scenarios:

* **http**: a 64 MiB response through frps's HTTP vhost (``vhostHTTPPort``), the user reading
  it at 4 MiB/s;
* **stcp-down**: 64 MiB from the service through the stcp owner frpc, frps and the visitor
  frpc, the user at the visitor reading at 4 MiB/s;
* **stcp-up**: 64 MiB from the user at the visitor as fast as it goes, the service reading at
  4 MiB/s (the slow end is behind the owner frpc);
* **udp** / **sudp**: 1200-byte datagrams as fast as one socket sends them, for 10 s, into a
  udp proxy's remote port (udp) or an sudp visitor (sudp); the service reads at most 2,000
  datagrams/s.  What frp cannot carry has to be dropped; the table gives the datagrams sent
  and the ones that reached the service.

Every byte of the TCP transfers must arrive (sha256 checked; a mismatch is a failed run).
The goal (issue 14): growth < 32 MiB in every process, for a transfer twice that size.
"""

import os
import socket
import sys
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _peers import (  # noqa: E402
    MIB,
    HttpService,
    TcpService,
    UdpSink,
    Watcher,
    http_get_paced,
    pattern_sha,
    read_paced,
    send_pattern,
    udp_flood,
    udp_probe,
)
from _rows import Session, figure, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, MeasureError, frpc_common  # noqa: E402

from tests.support import free_port  # noqa: E402

SCENARIOS = ("http", "stcp-down", "stcp-up", "udp", "sudp")
DOMAIN = "bp.example"
SECRET = "frptw-bench-bp"
DATAGRAM = 1200
SINK_RATE = 2000


def owner_toml(scenario: str, bind_port: int, ports: Dict[str, int]) -> str:
    """The frpc with the one proxy ``scenario`` goes through."""
    text = frpc_common(bind_port, CONFIGS["defaults"])
    if scenario == "http":
        return text + (f'\n[[proxies]]\nname = "bp-http"\ntype = "http"\ncustomDomains = ["{DOMAIN}"]\n'
                       f'localIP = "127.0.0.1"\nlocalPort = {ports["http"]}\n')
    if scenario == "udp":
        return text + (f'\n[[proxies]]\nname = "bp-udp"\ntype = "udp"\nremotePort = {ports["remote"]}\n'
                       f'localIP = "127.0.0.1"\nlocalPort = {ports["udp"]}\n')
    kind = scenario[:4]  # stcp or sudp
    local = ports["tcp"] if kind == "stcp" else ports["udp"]
    return text + (f'\n[[proxies]]\nname = "bp-{kind}"\ntype = "{kind}"\nsecretKey = "{SECRET}"\n'
                   f'localIP = "127.0.0.1"\nlocalPort = {local}\n')


def visitor_toml(kind: str, bind_port: int, port: int) -> str:
    return frpc_common(bind_port, CONFIGS["defaults"]) + (
        f'\n[[visitors]]\nname = "bp-visitor"\ntype = "{kind}"\nserverName = "bp-{kind}"\n'
        f'secretKey = "{SECRET}"\nbindAddr = "127.0.0.1"\nbindPort = {port}\n')


def download(port: int, n: int, rate: float, timeout: float):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"D %d\n" % n)
        return read_paced(s, n, rate, deadline=time.monotonic() + timeout)


def upload(port: int, n: int, rate: float, timeout: float):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"U %d %d\n" % (n, rate))
        send_pattern(s, n)
        answer = b""
        while not answer.endswith(b"\n"):
            data = s.recv(256)
            if not data:
                break
            answer += data
    words = answer.split()
    return (int(words[0]), words[1].decode()) if len(words) == 2 else (0, "")


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=64, help="MiB per TCP transfer (default 64)")
    p.add_argument("--rate", type=float, default=4.0, help="MiB/s the slow end reads (default 4)")
    p.add_argument("--udp-seconds", type=float, default=10.0, help="seconds of udp flood (default 10)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"some of {','.join(SCENARIOS)}")
    args = p.parse_args()
    scenarios = [x for x in args.scenarios.split(",") if x]
    if any(x not in SCENARIOS for x in scenarios):
        p.error(f"--scenarios: some of {', '.join(SCENARIOS)}")
    n, rate = args.mib * MIB, args.rate * MIB
    transfer_timeout = n / rate * 3 + 60
    tcp, http, sink = TcpService(), HttpService(), UdpSink(SINK_RATE)
    ports = {"tcp": tcp.port, "http": http.port, "udp": sink.port}

    with Session("backpressure", "Backpressure: RSS growth of frps and frpc behind a slow reader", args) as s:

        def run(impl: str, scenario: str) -> dict:
            with s.one_run(f"{impl}-{scenario}-") as r:
                vhost = free_port()
                extra = f"vhostHTTPPort = {vhost}\n" if scenario == "http" else ""
                frps, bind_port, _ = s.start_frps(r, impl, CONFIGS["defaults"], extra)
                ports["remote"] = free_port(socket.SOCK_DGRAM)
                owner = s.spawn_frp(r, impl, "frpc", owner_toml(scenario, bind_port, ports))
                pids = {"frps": frps.pid, "frpc": owner.pid}
                entry = {"http": vhost, "udp": ports["remote"]}.get(scenario)
                if entry is None:
                    entry = free_port(socket.SOCK_DGRAM if scenario == "sudp" else socket.SOCK_STREAM)
                    visitor = s.spawn_frp(r, impl, "frpc", visitor_toml(scenario[:4], bind_port, entry),
                                           "visitor")
                    pids["visitor"] = visitor.pid
                ready = {
                    "http": lambda: _quietly(lambda: http_get_paced(entry, DOMAIN, 16, 0, 5)[0] == 16),
                    "udp": lambda: udp_probe(entry, 0.3),
                    "sudp": lambda: udp_probe(entry, 0.3),
                }.get(scenario, lambda: _quietly(lambda: download(entry, 16, 0, 5)[0] == 16))
                s.poll(ready, r.children, time.perf_counter(), f"{scenario} path up", 0.1)
                time.sleep(0.5)
                watcher = Watcher(pids)
                try:
                    result = transfer(scenario, entry, n, rate, transfer_timeout, args.udp_seconds, sink)
                    watcher.sample()
                finally:
                    watcher.stop()
                result.update({f"{name}_mib": g for name, g in watcher.growth_mib().items()})
                return result

        for scenario in scenarios:
            runs = s.alternate(scenario, lambda impl, scenario=scenario: run(impl, scenario))
            sides = ["frps", "frpc"] + (["visitor"] if scenario[:4] in ("stcp", "sudp") else [])
            figures = [figure(f"{side} peak RSS growth", "MiB", True, runs, lambda r, side=side: r[f"{side}_mib"])
                       for side in sides]
            if scenario in ("udp", "sudp"):
                figures += [figure("datagrams sent", "", False, runs, lambda r: r["sent"]),
                            figure("datagrams reaching the service", "", False, runs, lambda r: r["received"])]
            else:
                figures.append(figure("transfer time", "s", True, runs, lambda r: r["seconds"]))
            s.table(scenario, figures, ["go", "tw"])
        s.write(prose(__doc__))
    for server in (tcp, http, sink):
        server.close()
    return 1 if s.failures else 0


def transfer(scenario: str, port: int, n: int, rate: float, timeout: float, udp_seconds: float,
             sink: UdpSink) -> dict:
    """Run the scenario's one transfer through ``port``; its figures.  Raises MeasureError
    unless every byte arrived intact."""
    start = time.monotonic()
    if scenario in ("udp", "sudp"):
        before = sink.received
        sent = udp_flood(port, DATAGRAM, udp_seconds)
        time.sleep(1.0)  # what frp still holds reaches the sink (it reads at SINK_RATE)
        return {"sent": sent, "received": sink.received - before}
    try:
        if scenario == "http":
            got, sha = http_get_paced(port, DOMAIN, n, rate, timeout)
        elif scenario == "stcp-down":
            got, sha = download(port, n, rate, timeout)
        else:
            got, sha = upload(port, n, rate, timeout)
    except OSError as e:
        raise MeasureError(f"{scenario}: {e}")
    if got != n or sha != pattern_sha(n):
        raise MeasureError(f"{scenario}: {got} of {n} bytes arrived" + (", corrupted" if got == n else ""))
    return {"seconds": time.monotonic() - start}


def _quietly(check) -> bool:
    try:
        return check()
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
