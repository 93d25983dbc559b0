"""Startup, frptw against Go frp 0.65: how long until frps accepts, and until a proxy works.

Run on demand (not a test, not in CI)::

    python bench/bench_startup.py [--repeat 5]

Every run starts fresh processes (``bench_tcp``'s defaults config: TLS + tcp mux; one tcp proxy
to the ``_load.py`` echo service) and ends them afterwards.  Times run from the moment the
process is spawned, so interpreter start and imports count, as they do for a user:

* **frps -> bind port listening**: until frps's bind port is in ``/proc/net/tcp`` as LISTEN
  (the kernel then completes connections); without a certificate (frps makes a self-signed one
  for TLS) and with ``transport.tls.certFile``/``keyFile`` (a 2048-bit RSA key and self-signed
  certificate made with ``cryptography`` in the bench's temporary directory);
* **frps + frpc -> first echo**: frps is spawned; once its bind port listens, frpc is spawned
  (so that frpc's login retry policy plays no part); until 16 bytes come back through the
  proxy's remote port on frps (probed every 2 ms, each probe a new connection);
* **frpc -> first echo**: frps already up and idle; from frpc's spawn to the first echo.

The last two are also reported up to the moment the proxy's remote port listens on frps (frpc
logged in and its proxy is registered), which splits login and registration from the first
work connection.  The **floor** row is the runtime alone: the Go binary printing its version,
and Python importing Twisted's reactor (what every frptw process does before reading its config).
A second table gives the CPU time (user + system, in clock ticks of 10 ms) the processes had
spent by the same moments: on a shared machine wall time also measures the neighbours.
"""

import datetime
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Figure, Session, figure, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, MeasureError, cpu_seconds, frpc_toml  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from tests.frpbin import frp_binary  # noqa: E402
from tests.support import free_port  # noqa: E402

CONFIG = CONFIGS["defaults"]


def write_certificate(directory: str) -> str:
    """A self-signed certificate and its RSA key, as frps's ``transport.tls`` lines."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "server.crt"), os.path.join(directory, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return f'transport.tls.certFile = "{cert_path}"\ntransport.tls.keyFile = "{key_path}"\n'


def main() -> int:
    args = parser(__doc__.split("\n")[0]).parse_args()
    with Session("startup", "Startup: frps accepting, frps + frpc and frpc alone to the first echo", args) as s:
        bench = s.bench
        bench.start_backend()
        tls_lines = write_certificate(s.workdir)

        def frps_only(impl: str, extra: str) -> dict:
            with s.one_run(f"{impl}-frps-") as run:
                frps, _, ms = s.start_frps(run, impl, CONFIG, extra)
                return {"ms": ms, "cpu_ms": cpu_seconds(frps.pid) * 1e3}

        def to_first_echo(impl: str, frps_up_first: bool) -> dict:
            with s.one_run(f"{impl}-pair-") as run:
                frps, bind_port, _ = s.start_frps(run, impl, CONFIG)
                if frps_up_first:
                    bench.settle([frps])
                remote_port = free_port()
                frpc = s.spawn_frp(run, impl, "frpc", frpc_toml(bind_port, remote_port, bench.backend_port, CONFIG))
                since = frpc.spawned if frps_up_first else frps.spawned
                result = {"listening_ms": s.wait_listening(remote_port, run.children, since, "proxy listening"),
                          "ms": s.wait_echo(remote_port, run.children, since, "first echo")}
                counted = [frpc] if frps_up_first else [frpc, frps]
                result["cpu_ms"] = sum(cpu_seconds(child.pid) for child in counted) * 1e3
                return result

        def floor(impl: str) -> dict:
            """Start the runtime and exit: what no frp process of that implementation undercuts."""
            argv = [frp_binary("frps"), "--version"] if impl == "go" else [
                sys.executable, "-c", "import twisted.internet.reactor"]
            with s.one_run(f"{impl}-floor-") as run:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                child = s.procs.spawn(f"{impl}-floor", argv)
                run.children.append(child)
                try:
                    child.popen.wait(args.timeout)
                except subprocess.TimeoutExpired:
                    raise MeasureError(f"{argv} did not exit within {args.timeout:.0f}s")
                ms = (time.perf_counter() - child.spawned) * 1e3
                # Only this child was reaped meanwhile: the growth of the children's usage is its CPU.
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                return {"ms": ms, "cpu_ms": cpu * 1e3}

        runs = {
            "floor": s.alternate("runtime floor", floor),
            "plain": s.alternate("frps, no cert file", lambda impl: frps_only(impl, "")),
            "cert": s.alternate("frps, with a cert file", lambda impl: frps_only(impl, tls_lines)),
            "pair": s.alternate("frps + frpc", lambda impl: to_first_echo(impl, frps_up_first=False)),
            "frpc": s.alternate("frpc (frps up)", lambda impl: to_first_echo(impl, frps_up_first=True)),
        }

        def row(title: str, key: str, pick: str = "ms") -> Figure:
            return figure(title, "ms", True, runs[key], lambda r: r[pick])

        def cpu(title: str, key: str) -> Figure:
            return figure(title, "CPU ms", True, runs[key], lambda r: r["cpu_ms"])

        s.table("Startup (defaults: TLS + tcp mux)", [
            row("floor: start the runtime, exit (Go: frps --version; frptw: python importing Twisted's reactor)",
                "floor"),
            row("frps -> bind port listening, no cert file", "plain"),
            row("frps -> bind port listening, with a cert file", "cert"),
            row("frps + frpc -> remote port listening", "pair", "listening_ms"),
            row("frps + frpc -> first echo", "pair"),
            row("frpc -> remote port listening (frps up)", "frpc", "listening_ms"),
            row("frpc -> first echo (frps up)", "frpc"),
        ], ["go", "tw"])
        s.table("CPU time spent by then (user + system; steadier than wall time on a loaded machine)", [
            cpu("floor: the runtime alone", "floor"),
            cpu("frps until its bind port listens, no cert file", "plain"),
            cpu("frps until its bind port listens, with a cert file", "cert"),
            cpu("frps + frpc until the first echo", "pair"),
            cpu("frpc until the first echo (frps up)", "frpc"),
        ], ["go", "tw"])
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
