"""frptw vs Go frp on 127.0.0.1: tcp, udp and stcp proxies; throughput, latency, rates, memory, startup.

Run on demand (not a test, not in CI)::

    python bench/bench_tcp.py [--quick] [--json] [--pairs raw,go,tw,tw-go,go-tw]
        [--configs defaults,tls-off,...] [--metrics throughput,latency,connrate,rss,udp,stcp]
        [--profile] [--keep] [--budget SECONDS]
    python bench/bench_tcp.py --render saved.json      # the table of a run saved with --json

Every frp side runs as its own OS process (so RSS and CPU are per process): the real Go
binaries (``tests.frpbin.frp_binary``) and frptw under ``twistd -n frps|frpc --config F``.  The
load generator and the "local service" behind frpc are ``bench/_load.py`` processes (plain
sockets on epoll, no Twisted), one per measurement; the ``raw`` pair sends the same load straight
to the service (TCP, and a UDP echo in the same process), which shows the generator's own
ceiling.  Measured, back to back in one run:

* pairs (client -> server): ``raw`` (no proxy), ``go`` (Go frpc -> Go frps), ``tw`` (frptw ->
  frptw), ``tw-go`` (frptw frpc -> Go frps), ``go-tw`` (Go frpc -> frptw frps);
* configs: ``defaults`` (TLS + tcp mux), ``tls-off``, ``encryption`` (use_encryption),
  ``compression`` (use_compression), ``mux-off`` (tcp_mux = false, TLS on), ``plain`` (TLS and
  tcp mux off: frp's bare splice), ``quic`` and ``kcp`` (frp's UDP transports to frps),
  ``websocket`` and ``wss`` (frp's websocket transports, on frps's bind port);
* per pair and config: download throughput (service -> frpc -> frps -> user) over 1 and over 8
  connections, with the CPU seconds frps and frpc spent per GB moved; 64-byte ping-pong
  latency over one connection (reported as added to raw loopback); startup time (spawn ->
  frps's bind port listening; frpc spawn -> its remote port listening on frps);
* per pair, in the defaults config (in every config in a full run): RSS of frps and frpc fresh
  and with 1000 open idle-ish connections (one echo each), and the sockets each still has open
  once those are closed (a leak detector);
* per pair, defaults config only: connect/echo/close cycles per second with 50 workers, with
  the CPU milliseconds frps and frpc spend per connection;
* ``udp``, per pair (and ``raw``: straight to the service's UDP echo), for 64- and 1400-byte
  datagrams through a udp proxy of the same frpc: round-trip p50/p99 with one datagram in
  flight, then echoed datagrams/s with a window of :data:`UDP_WINDOW` in flight and the CPU
  microseconds frps and frpc spend per datagram (there and back); datagrams not echoed within
  0.5 s are counted as lost (both runs).  Each run first probes until an echo comes back, since
  a udp proxy forwards nothing before frps has its work connection;
* ``stcp``, per pair: throughput over 1 and 8 connections of user -> visitor frpc -> frps ->
  stcp owner frpc -> service (the pair's frpc is the owner: its stcp proxy rides along with the
  tcp one; the visitor is a second frpc of the same implementation, started for this
  measurement), with the CPU seconds per GB of all three processes and the ratio to the
  pair's tcp throughput over 8 connections.  udp and stcp are measured in every config of a
  full run, and with ``--quick`` in ``defaults`` only (or the first config given without it).

``--profile`` runs the frptw sides under twistd's cProfile (``--profiler cprofile``) and
prints where each spent its time; its numbers are then not comparable, only its profiles.

Configs are run one after another, and inside each config the pairs back to back, so that
the numbers compared with each other are taken close together in time.  Mixed pairs run all
configs in a full run and only ``defaults`` with ``--quick``.  Every wait has a timeout, the
run has a time budget (``--quick`` stays under 3 minutes; what does not fit is reported as
skipped), and every process started is killed on exit, Ctrl-C or SIGTERM (and, through
``PR_SET_PDEATHSIG``, even if this script is SIGKILLed).
"""

import argparse
import compileall
import ctypes
import json
import os
import pstats
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.frpbin import frp_binary  # noqa: E402
from tests.support import free_port  # noqa: E402

LOAD = os.path.join(ROOT, "bench", "_load.py")
TLS_TERMINATOR = os.path.join(ROOT, "bench", "_tls_terminator.py")
TOKEN = "frptw-bench"
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The client-side -> server-side implementations of each pair (None = no proxy at all).
PAIRS: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "raw": (None, None),
    "go": ("go", "go"),
    "tw": ("tw", "tw"),
    "tw-go": ("tw", "go"),
    "go-tw": ("go", "tw"),
}
LABELS = {"raw": "raw", "go": "Go->Go", "tw": "tw->tw", "tw-go": "tw->Go", "go-tw": "Go->tw"}
MIXED = ("tw-go", "go-tw")
#: What can be measured (startup always is: every pair start measures it).
METRICS = ("throughput", "latency", "connrate", "rss", "udp", "stcp")
#: Datagram sizes of the udp measurements: a small one (per-datagram cost) and one near frp's
#: default udpPacketSize of 1500 (per-byte cost; 1400 leaves room for IP and UDP headers).
UDP_SIZES = (64, 1400)
#: Datagrams in flight in the udp rate run: well under the 1024 packets frp queues per udp
#: proxy, so the figure is the forwarding rate, not the drop policy of a flooded queue.
UDP_WINDOW = 64
#: Shared by the stcp owner and its visitor.
STCP_SECRET = "frptw-bench-stcp"
CONFIGS: Dict[str, Dict[str, object]] = {
    "defaults": dict(tls=True, mux=True, encryption=False, compression=False),
    "tls-off": dict(tls=False, mux=True, encryption=False, compression=False),
    "encryption": dict(tls=True, mux=True, encryption=True, compression=False),
    "compression": dict(tls=True, mux=True, encryption=False, compression=True),
    "mux-off": dict(tls=True, mux=False, encryption=False, compression=False),
    # Both off: frp's bare data path (a TCP work connection per user connection, spliced).
    "plain": dict(tls=False, mux=False, encryption=False, compression=False),
    # frp's UDP transports to frps (its quicBindPort / kcpBindPort get the bind port's number):
    # QUIC carries each logical connection as a stream (no yamux, always TLS 1.3); KCP carries
    # TLS and yamux as TCP does.
    "quic": dict(tls=True, mux=True, encryption=False, compression=False, protocol="quic"),
    "kcp": dict(tls=True, mux=True, encryption=False, compression=False, protocol="kcp"),
    # frp's websocket transports: websocket frames around TLS and yamux on frps's bind port
    # ("websocket"), or TLS around the websocket ("wss"), which frps leaves to a TLS terminator
    # in front of it (bench/_tls_terminator.py, the same one for every pair).
    "websocket": dict(tls=True, mux=True, encryption=False, compression=False, protocol="websocket"),
    "wss": dict(tls=True, mux=True, encryption=False, compression=False, protocol="wss"),
}
#: frps's UDP port key for each UDP transport.
UDP_TRANSPORT_PORTS = {"quic": "quicBindPort", "kcp": "kcpBindPort"}


@dataclass
class Settings:
    """How much each measurement does; ``--quick`` shrinks everything to fit 3 minutes."""

    total_bytes: int
    throughput_seconds: float
    repeat: int
    latency_count: int
    latency_seconds: float
    connrate_seconds: float
    hold_conns: int
    hold_seconds: float
    udp_count: int
    udp_seconds: float
    start_timeout: float
    budget: float
    rss_all_configs: bool
    udp_stcp_all_configs: bool

    @classmethod
    def for_mode(cls, quick: bool) -> "Settings":
        if quick:
            return cls(total_bytes=64 * MIB, throughput_seconds=3.0, repeat=3, latency_count=1000,
                       latency_seconds=2.0, connrate_seconds=2.0, hold_conns=1000, hold_seconds=20.0,
                       udp_count=300, udp_seconds=1.0,
                       start_timeout=15.0, budget=165.0, rss_all_configs=False, udp_stcp_all_configs=False)
        return cls(total_bytes=256 * MIB, throughput_seconds=20.0, repeat=3, latency_count=5000,
                   latency_seconds=15.0, connrate_seconds=5.0, hold_conns=1000, hold_seconds=40.0,
                   udp_count=3000, udp_seconds=5.0,
                   start_timeout=30.0, budget=3600.0, rss_all_configs=True, udp_stcp_all_configs=True)


class MeasureError(Exception):
    """A measurement (or the start of a pair) failed; the message is one line plus log tail."""


class Skipped(MeasureError):
    """Not run: the time budget was spent."""


class StartTimeout(MeasureError):
    """A side never got ready: its pair is not started again in later configs (each attempt
    would cost the whole start timeout).  A side that exits at once is retried per config:
    that is cheap, and may depend on the config."""


# -- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the bench dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: str
    spawned: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 8) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()[-4000:]
        except OSError:
            return ""
        return "\n".join("    | " + line for line in text.strip().splitlines()[-lines:])


class Processes:
    """Every process the bench starts, so that all of them (and only them) are ended."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.children: List[Child] = []
        self._counter = 0

    def spawn(self, name: str, argv: List[str], env: Optional[dict] = None, cwd: Optional[str] = None,
              stdin=subprocess.DEVNULL, stdout=None) -> Child:
        """Start ``argv`` in its own session (a Ctrl-C in the terminal reaches only the bench,
        which then stops everything in order); stderr, and stdout unless piped, go to a log."""
        self._counter += 1
        log_path = os.path.join(self.workdir, f"{self._counter:03d}-{name}.log")
        log = open(log_path, "wb")
        spawned = time.perf_counter()
        try:
            popen = subprocess.Popen(
                argv, stdin=stdin, stdout=log if stdout is None else stdout, stderr=log, env=env,
                cwd=cwd or self.workdir, start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        child = Child(name, popen, log_path, spawned)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; reap it."""
        if child in self.children:
            self.children.remove(child)
        p = child.popen
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for stream in (p.stdin, p.stdout):
            if stream is not None:
                stream.close()

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            try:
                self.stop(child, grace=1.0)
            except (OSError, subprocess.TimeoutExpired):
                pass


# -- /proc readings ----------------------------------------------------------------------------


def udp_bound_ports() -> set:
    """Ports with a bound UDP socket, from /proc/net/udp{,6} (a udp proxy's port on frps)."""
    ports = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                ports.update(int(line.split(None, 2)[1].rsplit(":", 1)[1], 16) for line in f)
        except (OSError, StopIteration):
            pass
    return ports


def listening_ports() -> set:
    """Ports with a listening TCP socket, from /proc/net/tcp{,6}: no probe connection, so no
    side effect on the process being watched.  The kernel lists listening sockets first, so
    reading stops at the first line in any other state (TIME_WAITs can number tens of
    thousands after the connection-rate runs)."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split(None, 4)
                    if fields[3] != "0A":
                        break
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration):
            pass
    return ports


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of the whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise MeasureError(f"no VmRSS for pid {pid}")


def open_sockets(pid: int) -> int:
    """Sockets the process has open.  Only sockets: Go's splice(2) path keeps a cache of
    pipes (4 descriptors per proxied connection with TLS and mux off) that its GC frees later."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return count


def raise_nofile() -> int:
    """Lift our soft RLIMIT_NOFILE to the hard limit; every child inherits it (1000 held
    connections cost frps and frpc 1000-2000 descriptors each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- frp processes -----------------------------------------------------------------------------


def frps_toml(bind_port: int, cfg: Dict[str, bool]) -> str:
    udp_key = UDP_TRANSPORT_PORTS.get(cfg.get("protocol", "tcp"))
    return (
        f'bindAddr = "127.0.0.1"\nbindPort = {bind_port}\nproxyBindAddr = "127.0.0.1"\n'
        f'auth.token = "{TOKEN}"\ntransport.tcpMux = {str(cfg["mux"]).lower()}\nlog.level = "warn"\n'
        + (f"{udp_key} = {bind_port}\n" if udp_key else "")
    )


def frpc_common(bind_port: int, cfg: Dict[str, bool]) -> str:
    b = {k: str(v).lower() for k, v in cfg.items()}
    return (
        f'serverAddr = "127.0.0.1"\nserverPort = {bind_port}\nauth.token = "{TOKEN}"\n'
        f'transport.tcpMux = {b["mux"]}\ntransport.tls.enable = {b["tls"]}\nlog.level = "warn"\n'
        f'transport.protocol = "{cfg.get("protocol", "tcp")}"\n'
    )


def _data_plane(cfg: Dict[str, bool]) -> str:
    return (f'transport.useEncryption = {str(cfg["encryption"]).lower()}\n'
            f'transport.useCompression = {str(cfg["compression"]).lower()}\n')


def tcp_proxy_toml(name: str, remote_port: int, backend_port: int, cfg: Dict[str, bool]) -> str:
    """One ``[[proxies]]`` table: tcp proxy ``name`` from frps's ``remote_port`` to the service."""
    return (f'\n[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {backend_port}\n'
            f'remotePort = {remote_port}\n' + _data_plane(cfg))


def frpc_toml(bind_port: int, remote_port: int, backend_port: int, cfg: Dict[str, bool],
              udp: Optional[Tuple[int, int]] = None, stcp: bool = False) -> str:
    """The frpc of a pair: the tcp proxy ``bench``; with ``udp`` = (remote port, service's UDP
    port) also the udp proxy ``bench-udp``; with ``stcp`` also the stcp proxy ``bench-stcp``
    (both to the same service), so that one frps + frpc carries every measurement."""
    text = frpc_common(bind_port, cfg) + tcp_proxy_toml("bench", remote_port, backend_port, cfg)
    if udp:
        text += (f'\n[[proxies]]\nname = "bench-udp"\ntype = "udp"\nlocalIP = "127.0.0.1"\n'
                 f'localPort = {udp[1]}\nremotePort = {udp[0]}\n' + _data_plane(cfg))
    if stcp:
        text += (f'\n[[proxies]]\nname = "bench-stcp"\ntype = "stcp"\nsecretKey = "{STCP_SECRET}"\n'
                 f'localIP = "127.0.0.1"\nlocalPort = {backend_port}\n' + _data_plane(cfg))
    return text


def visitor_toml(bind_port: int, visitor_port: int, cfg: Dict[str, bool]) -> str:
    """The second frpc of an stcp measurement: only a visitor of ``bench-stcp``, listening on
    ``visitor_port``, with the same transport and data-plane settings as the owner."""
    return (frpc_common(bind_port, cfg)
            + f'\n[[visitors]]\nname = "bench-visitor"\ntype = "stcp"\nserverName = "bench-stcp"\n'
            f'secretKey = "{STCP_SECRET}"\nbindAddr = "127.0.0.1"\nbindPort = {visitor_port}\n'
            + _data_plane(cfg))


def frp_argv(impl: str, kind: str, config_path: str, profile_path: Optional[str] = None) -> List[str]:
    """Command line of one frp side: the Go binary, or frptw under ``twistd -n`` (optionally
    under twistd's cProfile, saving the stats to ``profile_path`` when the reactor stops).

    twistd is started through ``twisted.scripts.twistd.run()``: that module has no
    ``__main__`` block, so ``python -m twisted.scripts.twistd`` exits 0 without doing anything.
    """
    if impl == "go":
        return [frp_binary(kind), "-c", config_path]
    profiling = [f"--profile={profile_path}", "--profiler=cprofile", "--savestats"] if profile_path else []
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", *profiling, kind, "--config", config_path]


def frp_env(impl: str) -> dict:
    """Environment of one frp side: the Go binaries get a bare one (no FRP_* or proxy variables
    from the caller's shell), frptw ours plus the checkout on PYTHONPATH.

    frptw runs from the checkout, so its bytecode is compiled here first: an installed frptw
    has its ``.pyc`` files from pip, and with ``PYTHONDONTWRITEBYTECODE`` set (as on this
    project's machines) every start would otherwise compile all of frptw again, which is not
    what a user's start costs."""
    if impl == "go":
        return {"PATH": os.environ.get("PATH", "")}
    _compile_checkout()
    if impl == "tw-malloc":  # every allocation through the C library's malloc (bench_burst's held part)
        return dict(os.environ, PYTHONPATH=ROOT, PYTHONMALLOC="malloc")
    return dict(os.environ, PYTHONPATH=ROOT)


_compiled: List[bool] = []


def _compile_checkout() -> None:
    if not _compiled:
        compileall.compile_dir(os.path.join(ROOT, "frptw"), quiet=1)
        _compiled.append(True)


def profile_top(path: str, top: int) -> List[dict]:
    """The ``top`` functions of a saved cProfile by own time (tottime)."""
    stats = pstats.Stats(path).stats
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in rows:
        short = filename
        for prefix in (ROOT + os.sep, os.path.dirname(os.__file__) + os.sep):
            short = short.replace(prefix, "")
        short = short.split("site-packages" + os.sep)[-1]
        out.append({"function": f"{short}:{line}({func})", "calls": ncalls, "tottime": tottime, "cumtime": cumtime})
    return out


@dataclass
class Tunnel:
    """A running frps + frpc pair whose tcp proxy listens on ``port`` (and, when asked for, whose
    udp proxy is bound to ``udp_port`` and whose stcp proxy ``bench-stcp`` waits for visitors)."""

    frps: Child
    frpc: Child
    port: int
    startup_ms: Dict[str, float]
    #: what a visitor of this pair needs: the client implementation, the port frpc dials
    #: (frps's bind port, or the TLS terminator's in front of it for wss), the pair's directory
    #: (for the visitor's config and log) and config name
    client_impl: str = ""
    bind_port: int = 0
    directory: str = ""
    config: str = ""
    udp_port: Optional[int] = None
    #: the TLS terminator in front of frps (wss only)
    terminator: Optional[Child] = None

    @property
    def sides(self) -> Dict[str, Child]:
        return {"frps": self.frps, "frpc": self.frpc}


# -- the bench ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, settings: Settings, workdir: str, log: Callable[[str], None], profile: bool = False,
                 metrics: Tuple[str, ...] = METRICS) -> None:
        self.s = settings
        self.metrics = metrics
        self.profile = profile
        #: (pair, config, side, path) of each cProfile written by a frptw side
        self.profiles: List[Tuple[str, str, str, str]] = []
        self.workdir = workdir
        self.log = log
        self.procs = Processes(workdir)
        self.deadline = time.monotonic() + settings.budget
        #: results[pair][config][metric] = dict of numbers, or {"error": text}
        self.results: Dict[str, Dict[str, Dict[str, dict]]] = {}
        self.backend_port = 0
        self.backend_udp_port = 0
        self.broken: Dict[str, str] = {}
        #: with --quick, the one config where udp and stcp are measured (set by :meth:`run`)
        self.extras_config = "defaults"

    # - plumbing -

    def record(self, pair: str, config: str, metric: str, value: dict) -> None:
        self.results.setdefault(pair, {}).setdefault(config, {})[metric] = value

    def fail(self, pair: str, config: str, metric: str, e: MeasureError) -> None:
        self.record(pair, config, metric, {"error": str(e)})
        self.log(f"  {LABELS[pair]:<7} {config:<12} {metric:<14} {str(e).splitlines()[0]}")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def need(self, seconds: float) -> None:
        if self.left() < seconds:
            raise Skipped(f"skipped: time budget ({self.s.budget:.0f}s) spent")

    def measure(self, pair: str, config: str, metric: str, estimate: float, fn: Callable[[], dict]) -> Optional[dict]:
        """Run one measurement, record its result or its error; never raises MeasureError."""
        try:
            self.need(estimate)
            value = fn()
        except MeasureError as e:
            self.fail(pair, config, metric, e)
            return None
        self.record(pair, config, metric, value)
        self.log(f"  {LABELS[pair]:<7} {config:<12} {metric:<14} {summary(metric, value)}")
        return value

    def run_load(self, command: str, port: int, *args: str, timeout: float) -> dict:
        """Run one ``_load.py`` client to completion; its last stdout line is the result."""
        argv = [sys.executable, LOAD, command, "--port", str(port), *args]
        child = self.procs.spawn(f"load-{command}", argv, stdout=subprocess.PIPE)
        try:
            out, _ = child.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MeasureError(f"load {command} did not finish within {timeout:.0f}s")
        finally:
            self.procs.stop(child)
        lines = out.decode().strip().splitlines()
        if child.popen.returncode != 0 or not lines:
            raise MeasureError(f"load {command} failed (rc {child.popen.returncode})\n{child.tail()}")
        result = json.loads(lines[-1])
        error = result.pop("error", None)
        if error:
            raise MeasureError(f"load {command}: {error}")
        return result

    def settle(self, children: List[Child], limit: float = 3.0) -> None:
        """Wait until the frp processes stop burning CPU (still flushing the buffers of a
        download cut at its deadline), so one measurement does not tax the next."""
        end = time.monotonic() + limit
        last = None
        while time.monotonic() < end:
            try:
                now = sum(cpu_seconds(c.pid) for c in children)
            except OSError:
                return
            if now == last:
                return
            last = now
            time.sleep(0.06)

    def start_backend(self) -> None:
        child = self.procs.spawn("service", [sys.executable, LOAD, "serve"], stdout=subprocess.PIPE)
        ready, _, _ = select.select([child.popen.stdout], [], [], 10)
        if not ready:
            raise MeasureError(f"the load service did not start\n{child.tail()}")
        ports = json.loads(child.popen.stdout.readline())
        self.backend_port, self.backend_udp_port = ports["port"], ports["udp_port"]

    def wait_listening(self, port: int, watched: List[Child], since: float, what: str,
                       ports: Callable[[], set] = listening_ports) -> float:
        """Milliseconds from ``since`` until ``port`` listens (or is in the set ``ports`` returns:
        :func:`udp_bound_ports` for a udp proxy); fail if a watched process exits."""
        end = time.monotonic() + self.s.start_timeout
        while time.monotonic() < end:
            for child in watched:
                if child.popen.poll() is not None:
                    raise MeasureError(f"{child.name} exited (rc {child.popen.returncode}) before {what}\n"
                                       f"{child.tail()}")
            if port in ports():
                return (time.perf_counter() - since) * 1e3
            time.sleep(0.005)
        tails = "\n".join(f"  {c.name}:\n{c.tail()}" for c in watched)
        raise StartTimeout(f"{what}: port {port} not listening after {self.s.start_timeout:.0f}s\n{tails}")

    def start_tunnel(self, pair: str, config: str) -> Tunnel:
        client_impl, server_impl = PAIRS[pair]
        cfg = CONFIGS[config]
        directory = tempfile.mkdtemp(prefix=f"{pair}-{config}-", dir=self.workdir)
        bind_port, remote_port = free_port(), free_port()
        udp_port = free_port(socket.SOCK_DGRAM) if self.udp_stcp_here(config, "udp") else None
        udp = (udp_port, self.backend_udp_port) if udp_port else None
        stcp = self.udp_stcp_here(config, "stcp")
        server_port = free_port() if cfg.get("protocol") == "wss" else bind_port
        paths = {}
        for kind, text in (("frps", frps_toml(bind_port, cfg)),
                           ("frpc", frpc_toml(server_port, remote_port, self.backend_port, cfg, udp, stcp))):
            paths[kind] = os.path.join(directory, f"{kind}.toml")
            with open(paths[kind], "w") as f:
                f.write(text)
        def spawn(impl: str, kind: str) -> Child:
            profile = None
            if self.profile and impl == "tw":
                profile = os.path.join(directory, f"{kind}.prof")
                self.profiles.append((pair, config, kind, profile))
            return self.procs.spawn(f"{impl}-{kind}", frp_argv(impl, kind, paths[kind], profile),
                                    env=frp_env(impl), cwd=directory)

        frps = spawn(server_impl, "frps")
        tunnel = terminator = None
        try:
            frps_ms = self.wait_listening(bind_port, [frps], frps.spawned, "frps ready")
            if server_port != bind_port:
                terminator = self.start_terminator(server_port, bind_port, directory)
            frpc = spawn(client_impl, "frpc")
            tunnel = Tunnel(frps, frpc, remote_port, {}, client_impl, server_port, directory, config, udp_port,
                            terminator)
            frpc_ms = self.wait_listening(remote_port, [frps, frpc], frpc.spawned, "frpc proxy ready")
            tunnel.startup_ms = {"frps": frps_ms, "frpc": frpc_ms}
            # A small download, checked byte for byte, proves the path before anything is timed.
            self.run_load("download", remote_port, "--bytes", str(MIB), "--seconds", "15", "--verify",
                          timeout=25)
        except BaseException:
            self.stop_tunnel(tunnel, frps)
            if tunnel is None and terminator is not None:
                self.procs.stop(terminator)
            raise
        return tunnel

    def start_terminator(self, port: int, target: int, directory: str) -> Child:
        """A TLS terminator on ``port`` in front of frps's ``target`` bind port, with a
        certificate of its own (frpc does not verify it: frp's default without trustedCaFile)."""
        from tests.pki import TestCA  # cryptography: only for wss

        cert, key = TestCA(directory).issueFiles("frps", dnsNames=["frps.bench"], ipAddresses=["127.0.0.1"])
        argv = [sys.executable, TLS_TERMINATOR, "--port", str(port), "--target", str(target), "--cert", cert,
                "--key", key]
        child = self.procs.spawn("tls-terminator", argv)
        self.wait_listening(port, [child], child.spawned, "TLS terminator ready")
        return child

    def udp_stcp_here(self, config: str, metric: str) -> bool:
        """Whether ``metric`` (udp or stcp) is measured in ``config``: in every config of a full
        run, else only in :attr:`extras_config`."""
        return metric in self.metrics and (self.s.udp_stcp_all_configs or config == self.extras_config)

    def start_visitor(self, tunnel: Tunnel) -> Tuple[Child, int, float]:
        """Start the visitor frpc of ``tunnel``'s stcp proxy (same implementation as the
        owner); return it, its local port, and the milliseconds until that port listened.

        The path is proven with a checked 1 MiB download first, retried briefly: the owner's
        stcp proxy registers with frps in parallel with its tcp proxy, which is all that
        starting the pair waited for."""
        port = free_port()
        path = os.path.join(tunnel.directory, "visitor.toml")
        with open(path, "w") as f:
            f.write(visitor_toml(tunnel.bind_port, port, CONFIGS[tunnel.config]))
        impl = tunnel.client_impl
        visitor = self.procs.spawn(f"{impl}-visitor", frp_argv(impl, "frpc", path), env=frp_env(impl),
                                   cwd=tunnel.directory)
        try:
            ms = self.wait_listening(port, [tunnel.frps, tunnel.frpc, visitor], visitor.spawned, "stcp visitor ready")
            for attempt in range(3):
                try:
                    self.run_load("download", port, "--bytes", str(MIB), "--seconds", "15", "--verify", timeout=25)
                    break
                except MeasureError as e:
                    if attempt == 2:
                        raise MeasureError(f"through the stcp visitor: {e}\n  visitor:\n{visitor.tail()}")
                    time.sleep(0.3)
        except BaseException:
            self.procs.stop(visitor)
            raise
        return visitor, port, ms

    def stop_tunnel(self, tunnel: Optional[Tunnel], frps: Optional[Child] = None) -> None:
        if tunnel is not None:
            self.procs.stop(tunnel.frpc)
            if tunnel.terminator is not None:
                self.procs.stop(tunnel.terminator)
            frps = tunnel.frps
        if frps is not None:
            self.procs.stop(frps)

    # - measurements -

    def throughput(self, port: int, conns: int, sides: Dict[str, Child]) -> dict:
        """Best of up to ``repeat`` downloads of ``total_bytes`` over ``conns`` connections
        (each cut at ``throughput_seconds``; another run starts only while the time spent is
        under ``throughput_seconds``), with the frp processes' CPU time per GB for that run.
        Best-of, because the machine is shared: a slower run measured a neighbour too."""
        best = None
        end = time.monotonic() + self.s.throughput_seconds
        for run in range(self.s.repeat):
            if run and (best["seconds"] > end - time.monotonic()):
                break
            r = self.run_with_cpu(sides, "download", port, "--conns", str(conns),
                                  "--bytes", str(self.s.total_bytes), "--seconds", str(self.s.throughput_seconds),
                                  timeout=self.s.throughput_seconds + 20)
            gb = r["bytes"] / 1e9
            r["cpu_s_per_gb"] = {k: cpu / gb for k, cpu in r.pop("cpu_s").items()} if gb else {}
            if best is None or r["mbps"] > best["mbps"]:
                best = r
        return best

    def run_with_cpu(self, sides: Dict[str, Child], command: str, port: int, *args: str, timeout: float) -> dict:
        """:meth:`run_load`, adding ``cpu_s``: the CPU seconds each frp process in ``sides``
        (none for raw loopback) spent meanwhile.

        CPU time per unit of work is the steadier figure on a shared machine: wall-clock rates
        also measure whoever else was running."""
        before = {k: cpu_seconds(c.pid) for k, c in sides.items()}
        r = self.run_load(command, port, *args, timeout=timeout)
        r["cpu_s"] = {k: cpu_seconds(c.pid) - before[k] for k, c in sides.items()}
        if sides:
            self.settle(list(sides.values()))
        return r

    def latency(self, port: int, sides: Dict[str, Child]) -> dict:
        r = self.run_with_cpu(sides, "latency", port, "--count", str(self.s.latency_count),
                              "--seconds", str(self.s.latency_seconds), timeout=self.s.latency_seconds + 20)
        r["cpu_us_per_round_trip"] = {k: cpu / r["round_trips"] * 1e6 for k, cpu in r.pop("cpu_s").items()}
        return r

    def connrate(self, port: int, sides: Dict[str, Child], workers: int = 50, size: int = 15) -> dict:
        """Connect / echo ``size`` bytes / close cycles, ``workers`` at a time (one: sequential
        connections, whose cycle percentiles are first-echo latencies)."""
        r = self.run_with_cpu(sides, "connrate", port, "--workers", str(workers), "--size", str(size),
                              "--seconds", str(self.s.connrate_seconds), timeout=self.s.connrate_seconds + 25)
        if r["completed"] == 0:
            raise MeasureError(f"no cycle completed: {r['errors']}")
        r["cpu_ms_per_conn"] = {k: cpu / r["completed"] * 1e3 for k, cpu in r.pop("cpu_s").items()}
        return r

    def udp(self, port: int, size: int, sides: Dict[str, Child]) -> dict:
        """Datagrams of ``size`` bytes to the UDP echo at ``port``: round-trip percentiles with
        one in flight, then echoed datagrams/s with :data:`UDP_WINDOW` in flight and the CPU each
        frp process spent per datagram there; ``lost`` sums both runs."""
        common = ("--size", str(size), "--probe-seconds", str(self.s.start_timeout))
        rtt = self.run_load("udplatency", port, *common, "--count", str(self.s.udp_count),
                            "--seconds", str(2 * self.s.udp_seconds), timeout=2 * self.s.udp_seconds + 25)
        rate = self.run_with_cpu(sides, "udprate", port, *common, "--window", str(UDP_WINDOW),
                                 "--seconds", str(self.s.udp_seconds), timeout=self.s.udp_seconds + 25)
        sent = rtt["sent"] + rate["sent"]
        lost = rtt["lost"] + rate["lost"]
        return {
            "us": rtt["us"], "per_second": rate["per_second"], "mbps": rate["mbps"], "window": rate["window"],
            "sent": sent, "lost": lost, "lost_pct": 100.0 * lost / sent if sent else 0.0,
            "late": rtt["late"] + rate["late"], "short": rtt["short"] + rate["short"],
            "cpu_us_per_datagram": {k: cpu / rate["sent"] * 1e6 for k, cpu in rate["cpu_s"].items()},
            "rtt_run": {k: rtt[k] for k in ("sent", "lost", "probe_ms")},
            "rate_run": {k: rate[k] for k in ("sent", "received", "drained", "lost", "seconds", "probe_ms")},
        }

    def udp_proxy(self, tunnel: Tunnel, size: int) -> dict:
        """:meth:`udp` through the tunnel's udp proxy, once frps has bound its port."""
        self.wait_listening(tunnel.udp_port, list(tunnel.sides.values()), time.perf_counter(),
                            "udp proxy bound", ports=udp_bound_ports)
        return self.udp(tunnel.udp_port, size, tunnel.sides)

    def stcp(self, pair: str, config: str, tunnel: Tunnel) -> None:
        """Throughput over 1 and 8 connections through a visitor frpc started for it (user ->
        visitor -> frps -> owner frpc -> service), with the CPU per GB of all three processes,
        and its ratio to the same pair's tcp proxy figure when that was measured."""
        s = self.s
        try:
            self.need(2 * s.throughput_seconds + 8)
            visitor, port, ms = self.start_visitor(tunnel)
        except MeasureError as e:
            for conns in (1, 8):
                self.fail(pair, config, f"stcp_{conns}", e)
            return
        sides = dict(tunnel.sides, visitor=visitor)

        def measured(conns: int) -> dict:
            v = dict(self.throughput(port, conns, sides), visitor_ready_ms=ms)
            tcp = self.results.get(pair, {}).get(config, {}).get(f"throughput_{conns}", {}).get("mbps")
            if tcp:
                v["vs_tcp"] = v["mbps"] / tcp
            return v

        try:
            for conns in (1, 8):
                self.measure(pair, config, f"stcp_{conns}", s.throughput_seconds + 2, lambda c=conns: measured(c))
        finally:
            self.procs.stop(visitor)

    def rss(self, tunnel: Tunnel) -> dict:
        """RSS and open sockets of frps and frpc: fresh, with ``hold_conns`` open connections,
        and once they are released and the processes are quiet again.  The sockets left over
        after release (``sockets_left``: pooled work connections, or connections never closed)
        are a leak detector."""
        sides = tunnel.sides

        def snapshot(name: str) -> None:
            result[f"{name}_mib"] = {k: rss_mib(c.pid) for k, c in sides.items()}
            result[f"sockets_{name}"] = {k: open_sockets(c.pid) for k, c in sides.items()}

        result: dict = {}
        snapshot("fresh")
        argv = [sys.executable, LOAD, "hold", "--port", str(tunnel.port), "--conns", str(self.s.hold_conns),
                "--seconds", str(self.s.hold_seconds)]
        child = self.procs.spawn("load-hold", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            wait = self.s.hold_seconds + 10
            ready, _, _ = select.select([child.popen.stdout], [], [], wait)
            line = child.popen.stdout.readline() if ready else b""
            if not line:
                raise MeasureError(f"hold: no report within {wait:.0f}s\n{child.tail()}")
            opened = json.loads(line)
            if opened["open"] < self.s.hold_conns:
                raise MeasureError(f"hold: only {opened['open']} of {self.s.hold_conns} connections "
                                   f"opened in {opened['seconds']:.1f}s, errors {opened['errors']}")
            result["open_seconds"] = opened["seconds"]
            snapshot("held")
            child.popen.stdin.write(b"release\n")
            child.popen.stdin.flush()
            ready, _, _ = select.select([child.popen.stdout], [], [], 20)
            line = child.popen.stdout.readline() if ready else b""
            result["alive_at_release"] = json.loads(line)["alive_at_release"] if line else None
        finally:
            self.procs.stop(child)
        time.sleep(1.0)
        self.settle(list(sides.values()))
        snapshot("after")
        n = self.s.hold_conns
        result["kib_per_conn"] = {k: (result["held_mib"][k] - result["fresh_mib"][k]) * 1024 / n for k in sides}
        result["sockets_left"] = {k: result["sockets_after"][k] - result["sockets_fresh"][k] for k in sides}
        return result

    # - the run -

    def run_raw(self) -> None:
        port = self.backend_port
        s = self.s
        if "throughput" in self.metrics:
            for conns in (1, 8):
                self.measure("raw", "defaults", f"throughput_{conns}", s.throughput_seconds + 2,
                             lambda c=conns: self.throughput(port, c, {}))
        if "latency" in self.metrics:
            self.measure("raw", "defaults", "latency", s.latency_seconds + 1, lambda: self.latency(port, {}))
        if "connrate" in self.metrics:
            self.measure("raw", "defaults", "connrate", s.connrate_seconds + 1, lambda: self.connrate(port, {}))
        if "udp" in self.metrics:
            for size in UDP_SIZES:
                self.measure("raw", "defaults", f"udp_{size}", 3 * s.udp_seconds + 2,
                             lambda size=size: self.udp(self.backend_udp_port, size, {}))

    def run_pair(self, pair: str, config: str) -> None:
        s = self.s
        if pair in self.broken:
            self.record(pair, config, "startup", {"error": f"skipped: {self.broken[pair]}"})
            return
        tunnel = None
        try:
            self.need(2 * s.throughput_seconds + 8)
            tunnel = self.start_tunnel(pair, config)
        except MeasureError as e:
            if isinstance(e, StartTimeout):
                self.broken[pair] = f"did not start in an earlier config ({str(e).splitlines()[0]})"
            self.fail(pair, config, "startup", e)
            return
        try:
            self.measure(pair, config, "startup", 0, lambda: dict(tunnel.startup_ms))
            if (config == "defaults" or s.rss_all_configs) and "rss" in self.metrics:
                # RSS first, before bulk transfers have grown any buffer pool.
                self.measure(pair, config, "rss", 10, lambda: self.rss(tunnel))
            if "throughput" in self.metrics:
                for conns in (1, 8):
                    self.measure(pair, config, f"throughput_{conns}", s.throughput_seconds + 2,
                                 lambda c=conns: self.throughput(tunnel.port, c, tunnel.sides))
            if "latency" in self.metrics:
                self.measure(pair, config, "latency", s.latency_seconds + 1,
                             lambda: self.latency(tunnel.port, tunnel.sides))
            if config == "defaults" and "connrate" in self.metrics:
                self.measure(pair, config, "connrate", s.connrate_seconds + 1,
                             lambda: self.connrate(tunnel.port, tunnel.sides))
            if tunnel.udp_port:
                for size in UDP_SIZES:
                    self.measure(pair, config, f"udp_{size}", 3 * s.udp_seconds + 2,
                                 lambda size=size: self.udp_proxy(tunnel, size))
            if self.udp_stcp_here(config, "stcp"):
                self.stcp(pair, config, tunnel)
        finally:
            self.stop_tunnel(tunnel)

    def run(self, pairs: List[str], configs: List[str], quick: bool) -> None:
        self.extras_config = "defaults" if "defaults" in configs else configs[0]
        self.start_backend()
        if "raw" in pairs:
            self.log("raw loopback (the load generator's ceiling)")
            self.run_raw()
        proxied = [p for p in pairs if p != "raw"]
        later = [p for p in proxied if p in MIXED and quick]
        for config in configs:
            self.log(f"config {config}")
            for pair in proxied:
                if pair not in later:
                    self.run_pair(pair, config)
        for pair in later:
            if "defaults" in configs or set(self.metrics) & {"udp", "stcp"}:
                self.log(f"mixed pair {LABELS[pair]} (--quick: {self.extras_config} only)")
                self.run_pair(pair, self.extras_config)


# -- report ------------------------------------------------------------------------------------


def summary(metric: str, v: dict) -> str:
    """One progress line for a finished measurement."""
    if metric.startswith("throughput"):
        cpu = " ".join(f"{k} {x:.2f}" for k, x in v.get("cpu_s_per_gb", {}).items())
        cut = "" if v["complete"] else " (cut at deadline)"
        return f"{v['mbps']:.0f} MB/s{cut}" + (f", CPU s/GB: {cpu}" if cpu else "")
    if metric == "latency":
        cpu = " ".join(f"{k} {x:.0f}" for k, x in v.get("cpu_us_per_round_trip", {}).items())
        return f"p50 {v['us']['p50']:.0f} us, p99 {v['us']['p99']:.0f} us" + (f", CPU us/rtt: {cpu}" if cpu else "")
    if metric == "connrate":
        cpu = " ".join(f"{k} {x:.2f}" for k, x in v.get("cpu_ms_per_conn", {}).items())
        return (f"{v['per_second']:.0f}/s, cycle p50 {v['cycle_ms']['p50']:.1f} ms, errors {v['errors'] or 0}"
                + (f", CPU ms/conn: {cpu}" if cpu else ""))
    if metric == "rss":
        return ", ".join(f"{k} {v['fresh_mib'][k]:.1f} -> {v['held_mib'][k]:.1f} MiB, "
                         f"sockets {v['sockets_fresh'][k]} -> {v['sockets_held'][k]} -> {v['sockets_after'][k]}"
                         for k in v["fresh_mib"])
    if metric == "startup":
        return ", ".join(f"{k} {x:.0f} ms" for k, x in v.items())
    if metric.startswith("udp_"):
        cpu = " ".join(f"{k} {x:.0f}" for k, x in v.get("cpu_us_per_datagram", {}).items())
        return (f"rtt p50 {v['us']['p50']:.0f} us, p99 {v['us']['p99']:.0f} us, {v['per_second']:.0f} datagrams/s "
                f"(window {v['window']}), lost {v['lost']}/{v['sent']}" + (f", CPU us/datagram: {cpu}" if cpu else ""))
    if metric.startswith("stcp_"):
        vs = f", {v['vs_tcp']:.2f}x tcp" if "vs_tcp" in v else ""
        return summary("throughput", v) + vs + f", visitor ready in {v['visitor_ready_ms']:.0f} ms"
    return json.dumps(v)


@dataclass
class Row:
    """One line of the table: a value per pair; ratios are against the ``go`` pair."""

    section: str
    title: str
    unit: str
    higher_is_better: bool
    values: Dict[str, Optional[float]] = field(default_factory=dict)
    notes: Dict[str, str] = field(default_factory=dict)

    def ratio(self, pair: str) -> Optional[float]:
        v, go = self.values.get(pair), self.values.get("go")
        # A difference (latency added over raw) can come out negative when raw loopback itself
        # had a bad tail: its ratio would mean nothing.
        if v is None or go is None or go <= 0 or v < 0 or pair in ("go", "raw"):
            return None
        return v / go


def build_rows(results: dict, pairs: List[str], configs: List[str]) -> List[Row]:
    """The table: one section per config, then the per-pair measurements (defaults config)."""
    rows: List[Row] = []
    section = ""

    def get(pair: str, config: str, metric: str) -> Optional[dict]:
        v = results.get(pair, {}).get(config, {}).get(metric)
        return v if v and "error" not in v else None

    def add(title: str, unit: str, higher: bool, config: str, metric: str, pick: Callable[[dict], float],
            raw_pick: Optional[Callable[[dict], float]] = None) -> None:
        row = Row(section, title, unit, higher)
        for pair in pairs:
            if pair == "raw" and raw_pick is None:
                continue
            source_config = "defaults" if pair == "raw" else config
            v = results.get(pair, {}).get(source_config, {}).get(metric)
            if v and "error" not in v:
                try:
                    row.values[pair] = (raw_pick if pair == "raw" else pick)(v)
                except KeyError:
                    pass  # a run saved by an older bench, without this figure
            elif v:
                row.notes[pair] = "skip" if v["error"].startswith("skipped") else "FAIL"
        if len(row.values) > ("raw" in row.values):
            rows.append(row)

    def per_side(title: str, unit: str, config: str, metric: str, key: Optional[str],
                 sides: Tuple[str, ...] = ("frps", "frpc")) -> None:
        """A row per side (frps, then frpc) of ``value[key][side]`` (``value[side]`` without a key)."""
        for side in sides:
            add(title.format(side=side), unit, False, config, metric,
                lambda v, side=side: (v[key] if key else v)[side])

    raw_lat = get("raw", "defaults", "latency")
    for config in configs:
        flags = CONFIGS[config]
        section = f"[{config}] protocol={flags.get('protocol', 'tcp')} tls={flags['tls']} mux={flags['mux']} " \
                  f"encryption={flags['encryption']} compression={flags['compression']}"
        for conns in (1, 8):
            add(f"throughput, {conns} conn{'s' if conns > 1 else ''}", "MB/s", True, config, f"throughput_{conns}",
                lambda v: v["mbps"], lambda v: v["mbps"])
        per_side("CPU {side}, 8 conns", "s/GB", config, "throughput_8", "cpu_s_per_gb")
        for p in ("p50", "p99"):
            base = raw_lat["us"][p] if raw_lat else 0.0
            add(f"latency {p} added" if raw_lat else f"latency {p}", "us", False, config, "latency",
                lambda v, p=p, base=base: v["us"][p] - base, lambda v, p=p: v["us"][p])
        per_side("CPU {side} per round trip", "us", config, "latency", "cpu_us_per_round_trip")
        per_side("RSS {side} fresh", "MiB", config, "rss", "fresh_mib")
        per_side("RSS {side} at 1000 conns", "MiB", config, "rss", "held_mib")
        per_side("RSS {side} per held conn", "KiB", config, "rss", "kib_per_conn")
        per_side("sockets {side} left after release", "", config, "rss", "sockets_left")
        for size in UDP_SIZES:
            metric = f"udp_{size}"
            for p in ("p50", "p99"):
                add(f"udp {size} B rtt {p}", "us", False, config, metric, lambda v, p=p: v["us"][p],
                    lambda v, p=p: v["us"][p])
            add(f"udp {size} B datagrams/s, {UDP_WINDOW} in flight", "1/s", True, config, metric, lambda v: v["per_second"],
                lambda v: v["per_second"])
            add(f"udp {size} B lost", "%", False, config, metric, lambda v: v["lost_pct"], lambda v: v["lost_pct"])
            per_side(f"CPU {{side}} per udp {size} B datagram", "us", config, metric, "cpu_us_per_datagram")
        for conns in (1, 8):
            add(f"stcp throughput, {conns} conn{'s' if conns > 1 else ''}", "MB/s", True, config, f"stcp_{conns}",
                lambda v: v["mbps"])
        add("stcp / tcp throughput, 8 conns", "x", True, config, "stcp_8", lambda v: v["vs_tcp"])
        per_side("CPU {side}, stcp 8 conns", "s/GB", config, "stcp_8", "cpu_s_per_gb", ("frps", "frpc", "visitor"))
    section = "[defaults] connection rate and startup"
    add("connections/s, 50 workers", "1/s", True, "defaults", "connrate", lambda v: v["per_second"],
        lambda v: v["per_second"])
    per_side("CPU {side} per connection", "ms", "defaults", "connrate", "cpu_ms_per_conn")
    per_side("startup {side}", "ms", "defaults", "startup", None)
    return rows


def format_table(rows: List[Row], pairs: List[str]) -> str:
    def cell(row: Row, pair: str) -> str:
        v = row.values.get(pair)
        if v is None:
            return row.notes.get(pair, "-")
        text = f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        r = row.ratio(pair)
        return f"{text} ({r:.2f}x)" if r is not None else text

    width = max((len(f"  {r.title} {r.unit}") for r in rows), default=20) + 2
    header = f"{'':<{width}}" + "".join(f"{LABELS[p]:>17}" for p in pairs)
    lines = [header]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(section)
        lines.append(f"{'  ' + row.title + ' ' + row.unit:<{width}}" + "".join(f"{cell(row, p):>17}" for p in pairs))
    return "\n".join(lines)


def errors_of(results: dict) -> List[str]:
    out = []
    for pair, configs in results.items():
        for config, metrics in configs.items():
            for metric, v in metrics.items():
                if "error" in v and not v["error"].startswith("skipped"):
                    out.append(f"{LABELS[pair]} [{config}] {metric}: {v['error']}")
    return out


def report(doc: dict, as_json: bool) -> None:
    """Print a run (``doc``: meta, results, errors, profiles) as the table, or as JSON."""
    meta, results = doc["meta"], doc["results"]
    pairs = meta.get("pairs") or [p for p in PAIRS if p in results]
    configs = meta.get("configs") or [c for c in CONFIGS if any(c in results[p] for p in results)]
    rows = build_rows(results, pairs, configs)
    if as_json:
        doc = dict(doc, table=[{"section": r.section, "metric": r.title, "unit": r.unit,
                                "higher_is_better": r.higher_is_better, "values": r.values,
                                "ratio_vs_go": {p: r.ratio(p) for p in r.values if r.ratio(p) is not None},
                                "notes": r.notes} for r in rows])
        print(json.dumps(doc, indent=2))
        return
    print(f"\nfrptw vs Go frp 0.65 on 127.0.0.1 ({meta['when']}, {meta['seconds']:.0f}s, "
          f"{'--quick, ' if meta['quick'] else ''}load average at start {meta['loadavg_at_start'][0]:.2f} "
          f"on {meta['cpus']} CPUs)")
    print("pairs are frpc->frps; (Nx) = value / Go->Go; MB = 1e6 bytes; throughput is the download direction;")
    print("higher is better for throughput, connections/s and datagrams/s, lower for everything else; the raw")
    print("column holds absolute latencies; CPU = user+system seconds of that process; udp rtt is absolute;")
    print("stcp: user -> visitor frpc -> frps -> owner frpc (the frpc rows) -> service; FAIL/skip: see below\n")
    print(format_table(rows, pairs))
    if doc["errors"]:
        print("\nfailures:")
        for e in doc["errors"]:
            print("  " + e)
    for title, profile in doc.get("profiles", {}).items():
        print(f"\nprofile {title} (by own time; {profile['path']})")
        print(f"  {'tottime':>8} {'cumtime':>8} {'calls':>9}  function")
        for f in profile["top"]:
            print(f"  {f['tottime']:8.3f} {f['cumtime']:8.3f} {f['calls']:9d}  {f['function']}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB per transfer, shorter runs, < 3 minutes")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--render", metavar="FILE", help="print the table of a run saved with --json, run nothing")
    parser.add_argument("--pairs", default=",".join(PAIRS), help=f"comma list of {', '.join(PAIRS)}")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma list of {', '.join(METRICS)}")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (default 165 quick, 3600 full)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs and logs)")
    parser.add_argument("--profile", action="store_true",
                        help="run the frptw sides under cProfile and print their top functions (implies --keep)")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            report(json.load(f), as_json=False)
        return 0
    pairs = [p for p in args.pairs.split(",") if p]
    configs = [c for c in args.configs.split(",") if c]
    metrics = tuple(m for m in args.metrics.split(",") if m)
    unknown = ([p for p in pairs if p not in PAIRS] + [c for c in configs if c not in CONFIGS]
               + [m for m in metrics if m not in METRICS])
    if unknown:
        parser.error(f"unknown pair/config/metric: {', '.join(unknown)}")
    settings = Settings.for_mode(args.quick)
    if args.budget:
        settings.budget = args.budget

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def terminated(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    nofile = raise_nofile()
    workdir = tempfile.mkdtemp(prefix="frptw-bench-")
    started = time.monotonic()
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "nofile": nofile,
        "quick": args.quick,
        "pairs": pairs,
        "configs": configs,
        "metrics": metrics,
        "settings": settings.__dict__,
        "payload": "mixed (alternating 32 KiB blocks of random bytes and word text)",
        "direction": "service -> frpc -> frps -> user (download)",
        "workdir": workdir,
    }
    log(f"frptw bench: workdir {workdir}, load average {meta['loadavg_at_start'][0]:.2f}, "
        f"{meta['cpus']} CPUs, budget {settings.budget:.0f}s")
    bench = Bench(settings, workdir, log, profile=args.profile, metrics=metrics)
    interrupted = False
    go_copies = set()
    try:
        if any("go" in PAIRS[p] for p in pairs):
            go_copies = {os.path.dirname(frp_binary(k)) for k in ("frps", "frpc")}
        bench.run(pairs, configs, args.quick)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every process started, printing what was measured")
    finally:
        bench.procs.stop_all()
        for d in go_copies:
            shutil.rmtree(d, ignore_errors=True)
    meta["seconds"] = time.monotonic() - started
    meta["interrupted"] = interrupted
    errors = errors_of(bench.results)
    profiles = {}
    for pair, config, kind, path in bench.profiles:
        if os.path.exists(path):
            profiles[f"{LABELS[pair]} [{config}] {kind}"] = {"path": path, "top": profile_top(path, 15)}
        else:
            errors.append(f"{LABELS[pair]} [{config}] {kind}: no profile written to {path}")
    report({"meta": meta, "results": bench.results, "errors": errors, "profiles": profiles}, args.json)
    if not (errors or args.keep or args.profile):
        shutil.rmtree(workdir, ignore_errors=True)
    elif errors:
        log(f"logs kept in {workdir}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
