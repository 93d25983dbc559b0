"""What the side-by-side row benches (``bench_connect``, ``bench_startup``, ``bench_nproxy``,
``bench_memory``) share: a run's processes and work directory, alternating repetitions, medians
and ratios, and the markdown report in ``bench/results/``.

Processes, configs and waiting for ports are ``bench_tcp``'s (its :class:`bench_tcp.Bench` is
the toolbox: :class:`bench_tcp.Processes` ends every process it started, by pid, and only
those), so frptw runs here exactly as it does there: ``twistd -n frps|frpc`` from this checkout,
against the real Go frp 0.65 binaries of ``tests.frpbin``.

Why alternate (go, tw, go, tw, ...) and take medians: the machine is shared, so load comes and
goes; alternating spreads it over both implementations, and the median of each side's
repetitions ignores the one run a neighbour happened to hit.
"""

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from bench_tcp import (
    ROOT,
    Bench,
    Child,
    MeasureError,
    Settings,
    frp_argv,
    frp_env,
    frps_toml,
    listening_ports,
    raise_nofile,
)

from tests.frpbin import frp_binary
from tests.support import free_port

RESULTS = os.path.join(ROOT, "bench", "results")
#: Column labels of the implementations (or client->server pairs) compared; ratios are
#: against ``go``.
LABELS = {"go": "Go frp 0.65", "tw": "frptw", "tw-go": "frptw frpc -> Go frps", "go-tw": "Go frpc -> frptw frps",
          "tw-malloc": "frptw, PYTHONMALLOC=malloc"}
#: The frpc->frps pairs ``--pairs`` may name.
PAIRS = ("go", "tw", "tw-go", "go-tw")
#: The payload of one echo probe (the service's mode byte, then 16 bytes echoed).
ECHO = b"0123456789abcdef"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every row bench has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeat", type=int, default=3, help="repetitions per implementation, alternating (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds any one wait may take (default 60)")
    p.add_argument("--no-write", action="store_true", help="print the markdown only, write no results file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs and logs)")
    return p


def pairs_option(p: argparse.ArgumentParser, default: str) -> Callable[[argparse.Namespace], List[str]]:
    """``--pairs``: which frpc->frps pairs (``bench_tcp``'s names) run; Go->Go always does,
    first, since every ratio is against it.  Returns the function that reads the option."""
    p.add_argument("--pairs", default=default, help=f"frpc->frps pairs: go and some of tw, tw-go, go-tw "
                                                     f"(default {default})")

    def read(args: argparse.Namespace) -> List[str]:
        pairs = [x for x in args.pairs.split(",") if x]
        if any(x not in PAIRS for x in pairs):
            p.error(f"--pairs: some of {', '.join(PAIRS)}")
        return ["go"] + [x for x in pairs if x != "go"]

    return read


def prose(doc: str) -> str:
    """The paragraphs of a bench's docstring after its indented usage block: the description
    that heads its results file."""
    paragraphs = doc.strip().split("\n\n")
    usage = max(i for i, para in enumerate(paragraphs) if para.startswith("    "))
    return "\n\n".join(paragraphs[usage + 1:])


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def machine() -> Dict[str, str]:
    """What the figures were measured on (the load is noted separately, before and after)."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def output(argv: List[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "go_frp": output([frp_binary("frps"), "--version"]),
        "frptw": output(["git", "log", "-1", "--format=%h"]),
        "frptw_change": shorten(output(["git", "log", "-1", "--format=%h %s", "--", "frptw"]), 100),
    }


@dataclass
class Figure:
    """One row of a table: every repetition's value per implementation; the table shows the
    median, and the ratio to Go's median oriented so that > 1 means frptw did better."""

    title: str
    unit: str
    lower_is_better: bool
    values: Dict[str, List[float]] = field(default_factory=dict)

    def median(self, impl: str) -> Optional[float]:
        v = self.values.get(impl)
        return statistics.median(v) if v else None

    def ratio(self, impl: str) -> Optional[float]:
        mine, go = self.median(impl), self.median("go")
        if impl == "go" or mine is None or go is None or mine <= 0 or go <= 0:
            return None
        return go / mine if self.lower_is_better else mine / go


def figure(title: str, unit: str, lower_is_better: bool, runs: Dict[str, List[dict]],
           pick: Callable[[dict], float]) -> Figure:
    """A :class:`Figure` from :meth:`Session.alternate`'s results (failed runs left out)."""
    return Figure(title, unit, lower_is_better,
                  {impl: [pick(r) for r in results if "error" not in r] for impl, results in runs.items()})


def _number(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 or abs(v - round(v)) < 1e-9 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def markdown_table(figures: Iterable[Figure], impls: List[str]) -> str:
    others = [i for i in impls if i != "go"]
    head = ["", *(LABELS[i] for i in impls), *(f"{LABELS[i]} vs Go" for i in others), "every run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        cells = [f"{f.title} ({f.unit})" if f.unit else f.title]
        cells += [_number(f.median(i)) for i in impls]
        cells += [f"{f.ratio(i):.2f}×" if f.ratio(i) is not None else "-" for i in others]
        cells.append("; ".join(f"{i}: " + ", ".join(_number(v) for v in f.values.get(i, [])) for i in impls))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Session:
    """One run of a row bench: the work directory, :attr:`bench` (``bench_tcp``'s toolbox and
    its processes), the machine and its load, and the markdown written at the end.

    Use as a context manager: every process started is ended on the way out, whatever
    happens (Ctrl-C and SIGTERM included)."""

    def __init__(self, name: str, title: str, args: argparse.Namespace) -> None:
        self.name = name
        self.title = title
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix=f"frptw-{name}-")
        settings = Settings.for_mode(quick=False)
        settings.start_timeout = args.timeout
        self.bench = Bench(settings, self.workdir, log, metrics=())
        self.procs = self.bench.procs
        self.sections: List[str] = []
        self.failures: List[str] = []
        self.machine: Dict[str, str] = {}
        self.load_before = os.getloadavg()
        self.started = time.time()
        #: How the figures were taken, for the report's head (a bench that does not
        #: alternate repetitions says what it does instead).
        self.method = (f"medians of {args.repeat} alternating repetitions (go, tw, go, tw, ...); "
                       f"\"vs Go\" > 1 means frptw did better (Go's time / frptw's, or frptw's rate / Go's)")

    def __enter__(self) -> "Session":
        def terminated(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, terminated)
        signal.signal(signal.SIGHUP, terminated)
        raise_nofile()
        self.machine = machine()
        log(f"{self.name}: workdir {self.workdir}, load average {self.load_before[0]:.2f} on "
            f"{self.machine['nproc']} CPUs")
        return self

    def __exit__(self, *exc) -> None:
        self.procs.stop_all()
        for kind in ("frps", "frpc"):
            shutil.rmtree(os.path.dirname(frp_binary(kind)), ignore_errors=True)
        if self.failures or self.args.keep:
            log(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # - running -

    def alternate(self, what: str, run: Callable[[str], dict],
                  impls: Iterable[str] = ("go", "tw")) -> Dict[str, List[dict]]:
        """``run(impl)`` ``--repeat`` times per implementation, alternating; a run that fails
        (MeasureError) is recorded as ``{"error": ...}``, noted in the report, and skipped in
        the medians."""
        impls = list(impls)
        runs: Dict[str, List[dict]] = {impl: [] for impl in impls}
        for rep in range(self.args.repeat):
            for impl in impls:
                try:
                    result = run(impl)
                except MeasureError as e:
                    result = {"error": str(e)}
                    self.failures.append(f"{what}, {LABELS[impl]}, run {rep + 1}: {str(e).splitlines()[0]}")
                runs[impl].append(result)
                shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()
                         if not isinstance(v, (dict, list))}
                log(f"  {what:<28} {impl:<6} run {rep + 1}: {shown}")
        return runs

    @contextlib.contextmanager
    def one_run(self, prefix: str) -> Iterator["Run"]:
        """A repetition's own directory and processes; the processes end when it does."""
        run = Run(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))
        try:
            yield run
        finally:
            for child in reversed(run.children):
                self.procs.stop(child)

    def spawn_frp(self, run: "Run", impl: str, kind: str, config_text: str, name: str = "") -> Child:
        """Write ``config_text`` to the run's directory (as ``name``.toml, by default
        ``kind``.toml) and start that frp side, as ``bench_tcp`` does."""
        name = name or kind
        path = os.path.join(run.directory, f"{name}.toml")
        with open(path, "w") as f:
            f.write(config_text)
        child = self.procs.spawn(f"{impl}-{name}", frp_argv(impl, kind, path), env=frp_env(impl), cwd=run.directory)
        run.children.append(child)
        return child

    def start_frps(self, run: "Run", impl: str, cfg: Dict[str, bool], extra: str = "") -> Tuple[Child, int, float]:
        """frps (``bench_tcp``'s config for ``cfg``, plus ``extra`` lines) on a free bind port:
        the process, the port, and the milliseconds from its spawn until the port listened."""
        port = free_port()
        frps = self.spawn_frp(run, impl, "frps", frps_toml(port, cfg) + extra)
        return frps, port, self.wait_listening(port, [frps], frps.spawned, "frps listening")

    def wait_listening(self, port: int, watched: List[Child], since: float, what: str) -> float:
        """Milliseconds from ``since`` until ``port`` listens (``bench_tcp``'s wait)."""
        return self.bench.wait_listening(port, watched, since, what)

    def wait_all_listening(self, ports: List[int], watched: List[Child], since: float, what: str) -> float:
        """Milliseconds from ``since`` until every one of ``ports`` listens."""
        wanted = set(ports)
        return self.poll(lambda: wanted <= listening_ports(), watched, since, what, 0.005)

    def wait_echo(self, port: int, watched: List[Child], since: float, what: str) -> float:
        """Milliseconds from ``since`` until 16 bytes come back through ``port`` (retrying
        every 2 ms while the port refuses, or closes before echoing: not ready yet)."""
        return self.poll(lambda: echo(port, 5.0), watched, since, what, 0.002)

    def poll(self, ready: Callable[[], bool], watched: List[Child], since: float, what: str,
             interval: float) -> float:
        """Milliseconds from ``since`` until ``ready()``; fail if a watched process exits or
        ``--timeout`` passes."""
        end = time.monotonic() + self.args.timeout
        while time.monotonic() < end:
            for child in watched:
                if child.popen.poll() is not None:
                    raise MeasureError(f"{child.name} exited (rc {child.popen.returncode}) before {what}\n"
                                       f"{child.tail()}")
            if ready():
                return (time.perf_counter() - since) * 1e3
            time.sleep(interval)
        raise MeasureError(f"{what}: not within {self.args.timeout:.0f}s")

    # - the report -

    def table(self, heading: str, figures: Iterable[Figure], impls: List[str], note: str = "") -> None:
        text = markdown_table(figures, impls)
        self.sections.append(f"## {heading}\n\n" + (f"{note}\n\n" if note else "") + text)
        log("\n" + self.sections[-1] + "\n")

    def write(self, description: str) -> str:
        """The markdown of this run; written to ``bench/results/<date>-<name>.md`` unless
        ``--no-write``.  Returns the text."""
        after = os.getloadavg()
        m = self.machine
        loads = lambda la: " / ".join(f"{x:.2f}" for x in la)  # noqa: E731
        command = "python bench/" + os.path.basename(sys.argv[0]) + "".join(" " + a for a in sys.argv[1:])
        text = (
            f"# {self.title}\n\n"
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.started))}, `{command}` "
            f"({time.time() - self.started:.0f} s)\n\n"
            f"- machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}; "
            f"shared with other work\n"
            f"- load average (1 / 5 / 15 min): before {loads(self.load_before)}, after {loads(after)}\n"
            f"- Go frp: `{m['go_frp']}`; frptw: checkout `{m['frptw']}`, last change to frptw/: "
            f"`{m['frptw_change']}`\n"
            f"- {self.method}\n\n"
            f"{description.strip()}\n\n" + "\n\n".join(self.sections) + "\n"
        )
        if self.failures:
            text += "\n## Failed runs\n\n" + "\n".join(f"- {f}" for f in self.failures) + "\n"
        if not self.args.no_write:
            os.makedirs(RESULTS, exist_ok=True)
            path = os.path.join(RESULTS, f"{time.strftime('%Y-%m-%d', time.gmtime(self.started))}-{self.name}.md")
            with open(path, "w") as f:
                f.write(text)
            log(f"written: {os.path.relpath(path, ROOT)}")
        return text


@dataclass
class Run:
    """One repetition: its directory (configs, logs) and the processes it started."""

    directory: str
    children: List[Child] = field(default_factory=list)


def echo(port: int, timeout: float) -> bool:
    """One connection to the ``_load.py`` service (through a proxy at ``port``): 16 bytes
    out, the same 16 back.  False if refused, reset, closed or timed out."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"E" + ECHO)
            got = b""
            while len(got) < len(ECHO):
                chunk = s.recv(64)
                if not chunk:
                    return False
                got += chunk
            return got == ECHO
    except OSError:
        return False
