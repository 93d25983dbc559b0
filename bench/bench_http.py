"""HTTP vhost throughput and latency: our frps against Go frps, in one run (issue 6).

Run on demand from the checkout root (not part of the tests or CI); needs ``wrk``
(``apt-get install -y wrk``) and the Go frp binaries that ``tests.frpbin`` provides::

    python bench/bench_http.py                  # 10 s per row
    python bench/bench_http.py --seconds 5 --connections 20

Each row is ``wrk`` with N keep-alive connections (``Host: bench.test``) for a fixed time
against the vhost HTTP port of one frps, whose ``http`` proxy leads through one frpc to the
same backend: a small asyncio server (its own process) answering every GET with 1 KiB.

* ``direct``: wrk against the backend itself, the ceiling of this machine and tools;
* ``go frps + go frpc``: the reference every ratio is relative to;
* ``frptw frps + go frpc``: only frps differs from the reference;
* ``go frps + frptw frpc``: only frpc differs.

Every process (frps, frpc, backend, wrk) is a child of this script on 127.0.0.1, each frp
side as a separate process (frptw under ``twistd -n``), and all are ended (SIGTERM, then
SIGKILL) when a row is done, whatever happens.
"""

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.frpbin import frp_binary  # noqa: E402
from tests.support import free_port  # noqa: E402

TOKEN = "bench"
HOST = "bench.test"
BODY = b"x" * 1024
#: A head as real servers write it: with Date (RFC 9110 6.6.1), which frps, like Go, adds when missing.
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: bench\r\nDate: Fri, 04 Dec 2026 09:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))


# -- the backend (``bench_http.py backend PORT``, in its own process) ---------------------------


class _Backend(asyncio.Protocol):
    """Answers each request head with the same 1 KiB response (GETs only: no bodies)."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        heads = self.buffer.count(b"\r\n\r\n")
        if heads:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * heads)


def backend(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Backend, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# -- processes ----------------------------------------------------------------------------------


class Processes:
    """The children of one row; :meth:`stop_all` ends exactly those."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.children: List[subprocess.Popen] = []

    def start(self, name: str, argv: List[str]) -> subprocess.Popen:
        log = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        with log:
            # frptw and its twistd plugins are found through the checkout root on PYTHONPATH.
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir,
                                     env=env, start_new_session=True)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.wait(3)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self.children = []


def frp_argv(impl: str, kind: str, config: str, profile: Optional[str] = None) -> List[str]:
    if impl == "go":
        return [frp_binary(kind), "-c", config]
    # twistd's own profiler option: the stats are written when SIGTERM stops the reactor.
    profiling = ["--profiler=cprofile", "--savestats", f"--profile={profile}"] if profile else []
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", *profiling,
            kind, "--config", config]


def write(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_routed(port: int, timeout: float = 30.0) -> None:
    """Until a GET through the vhost reaches the backend (frps up, proxy registered)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": HOST})
            with urllib.request.urlopen(request, timeout=2) as reply:
                if reply.status == 200 and reply.read() == BODY:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no route through port {port} within {timeout:.0f} s")
        time.sleep(0.2)


# -- measuring ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(port: int, connections: int, seconds: float, threads: int) -> Dict[str, float]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
            "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    result = {
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(sum(map(int, errors.groups())) if errors else 0) + float(non2xx.group(1) if non2xx else 0)
    return result


def cpu_seconds(child: subprocess.Popen) -> float:
    """User + system CPU time the process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{child.pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(row: str, frps: Optional[str], frpc: Optional[str], args: argparse.Namespace,
            repetition: int = 0) -> Dict[str, float]:
    workdir = tempfile.mkdtemp(prefix="bench_http_")
    procs = Processes(workdir)

    def profile(kind: str) -> Optional[str]:
        if not args.profile:
            return None
        os.makedirs(args.profile, exist_ok=True)
        return os.path.abspath(os.path.join(args.profile, f"{kind}-{repetition}.prof"))

    try:
        backend_port = free_port()
        procs.start("backend", [sys.executable, os.path.abspath(__file__), "backend", str(backend_port)])
        if frps is None:
            port = backend_port
            time.sleep(0.5)
        else:
            bind, port = free_port(), free_port()
            common = f'auth.token = "{TOKEN}"\nlog.level = "warn"\n'
            frps_toml = write(workdir, "frps.toml", (
                f'bindAddr = "127.0.0.1"\nbindPort = {bind}\nproxyBindAddr = "127.0.0.1"\n'
                f"vhostHTTPPort = {port}\n" + common))
            frps_process = procs.start("frps", frp_argv(frps, "frps", frps_toml, profile("frps")))
            procs.start("frpc", frp_argv(frpc, "frpc", profile=profile("frpc"), config=write(workdir, "frpc.toml", (
                f'serverAddr = "127.0.0.1"\nserverPort = {bind}\nloginFailExit = false\n' + common
                + f'\n[[proxies]]\nname = "web"\ntype = "http"\nlocalIP = "127.0.0.1"\nlocalPort = {backend_port}\n'
                  f'customDomains = ["{HOST}"]\n'))))
        wait_routed(port)
        run_wrk(port, args.connections, args.warmup, args.threads)  # work-connection pools, caches
        cpu = cpu_seconds(frps_process) if frps else 0.0
        result = run_wrk(port, args.connections, args.seconds, args.threads)
        # CPU time per request holds up better than req/s on a loaded machine: it is what frps
        # spends, not what it was given.
        result["frps_us"] = (cpu_seconds(frps_process) - cpu) / result["requests"] * 1e6 if frps else 0.0
        print(f"  {row:24} {result['rps']:9.0f} req/s  p50 {result['p50']:7.2f} ms  p99 {result['p99']:7.2f} ms"
              f"  frps CPU {result['frps_us']:5.0f} us/req  errors {result['errors']:.0f}", flush=True)
        return result
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


ROWS = {
    "direct": ("direct (no frp)", None, None),
    "go": ("go frps + go frpc", "go", "go"),
    "tw": ("frptw frps + go frpc", "frptw", "go"),
    "twc": ("go frps + frptw frpc", "go", "frptw"),
}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backend"]:
        backend(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement per row (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured run before each row (default 2)")
    parser.add_argument("--connections", type=int, default=50, help="keep-alive connections (default 50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"rows to run, of {','.join(ROWS)} (default all; "
                        "go is always run: it is the reference)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the rows, alternating; medians reported")
    parser.add_argument("--profile", metavar="DIR", help="run frptw under twistd's cProfile, stats written to DIR")
    args = parser.parse_args(argv)
    # A SIGTERM ends the bench through its ``finally`` blocks, which stop the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        print("bench_http needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    print(f"wrk: {args.connections} keep-alive connections, {args.seconds:g} s per row, 1 KiB responses")
    keys = ["go"] + [key for key in args.rows.split(",") if key != "go"]
    runs: Dict[str, List[Dict[str, float]]] = {}
    for repetition in range(args.repeat):
        for key in keys:
            row, frps, frpc = ROWS[key]
            runs.setdefault(row, []).append(measure(row, frps, frpc, args, repetition))
    results = {row: {name: statistics.median(r[name] for r in rs) for name in rs[0]} for row, rs in runs.items()}
    ref = results["go frps + go frpc"]
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} alternating rounds")
    print(f"\n{'':24} {'req/s':>9} {'vs go':>6} {'p50 ms':>8} {'vs go':>6} {'p99 ms':>8} {'vs go':>6}"
          f" {'frps us/req':>11} {'vs go':>6}")
    for row, r in results.items():
        print(f"{row:24} {r['rps']:9.0f} {r['rps'] / ref['rps']:6.2f} {r['p50']:8.2f} {r['p50'] / ref['p50']:6.2f} "
              f"{r['p99']:8.2f} {r['p99'] / ref['p99']:6.2f} {r['frps_us']:11.0f} "
              f"{r['frps_us'] / ref['frps_us'] if r['frps_us'] else 0:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
