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
"""

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Session, figure, parser, prose  # noqa: E402
from bench_tcp import CONFIGS, frpc_toml  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from tests.frpbin import free_port  # noqa: E402

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
                return {"ms": s.start_frps(run, impl, CONFIG, extra)[2]}

        def to_first_echo(impl: str, frps_up_first: bool) -> dict:
            with s.one_run(f"{impl}-pair-") as run:
                frps, bind_port, _ = s.start_frps(run, impl, CONFIG)
                if frps_up_first:
                    bench.settle([frps])
                remote_port = free_port()
                frpc = s.spawn_frp(run, impl, "frpc", frpc_toml(bind_port, remote_port, bench.backend_port, CONFIG))
                since = frpc.spawned if frps_up_first else frps.spawned
                return {"ms": s.wait_echo(remote_port, run.children, since, "first echo")}

        rows = [
            ("frps -> bind port listening, no cert file", lambda impl: frps_only(impl, "")),
            ("frps -> bind port listening, with a cert file", lambda impl: frps_only(impl, tls_lines)),
            ("frps + frpc -> first echo", lambda impl: to_first_echo(impl, frps_up_first=False)),
            ("frpc -> first echo (frps up)", lambda impl: to_first_echo(impl, frps_up_first=True)),
        ]
        figures = [figure(title, "ms", True, s.alternate(title.split(",")[-1][:28], run), lambda r: r["ms"])
                   for title, run in rows]
        s.table("Startup (defaults: TLS + tcp mux)", figures, ["go", "tw"])
        s.write(prose(__doc__))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
