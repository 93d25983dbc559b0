"""The ends of the traffic that ``bench_backpressure`` and ``soak`` drive through frp, and the
process watcher both read figures from.

Plain blocking sockets on threads of the bench process (the processes measured are frps and
frpc, never this one): a TCP service, an HTTP service and a UDP sink behind frpc, and the
users in front of frps or a visitor.  Every payload is the same seeded pattern, so a receiver
checks what arrived by its sha256 without the sender having to tell it.

* :class:`TcpService` answers one command line per connection: ``D n`` sends ``n`` bytes as
  fast as the socket takes them; ``U n rate`` reads ``n`` bytes at ``rate`` bytes/s (0: as
  fast as it can) and answers with their sha256; ``E`` echoes until the user closes.
* :class:`HttpService` answers ``GET /n`` with ``n`` bytes (Content-Length), keep-alive.
* :class:`UdpSink` counts the datagrams it reads (at most ``rate`` per second, so a flood is
  more than it takes), and echoes the short ones (``ping``), which prove a path is up.
* :class:`Watcher` samples ``VmRSS`` (and open descriptors) of some processes every few
  milliseconds on its own thread and keeps each one's peak.
"""

import hashlib
import os
import random
import socket
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.procmem import rssKiB  # noqa: E402

MIB = 1024 * 1024
#: One 64 KiB block of seeded random bytes: the payload is this block repeated.
BLOCK = random.Random(14).randbytes(64 * 1024)
#: Datagrams this short are echoed by the sink (the probe that a udp path is up).
PROBE = b"ping"


def pattern_sha(n: int) -> str:
    """sha256 of the first ``n`` bytes of the payload."""
    h = hashlib.sha256()
    full, rest = divmod(n, len(BLOCK))
    for _ in range(full):
        h.update(BLOCK)
    h.update(BLOCK[:rest])
    return h.hexdigest()


def send_pattern(sock: socket.socket, n: int) -> None:
    view = memoryview(BLOCK)
    while n > 0:
        k = min(n, len(BLOCK))
        sock.sendall(view[:k])
        n -= k


def read_paced(sock: socket.socket, n: int, rate: float, chunk: int = 64 * 1024,
               deadline: Optional[float] = None, prefix: bytes = b"") -> Tuple[int, str]:
    """Read ``n`` bytes (``prefix`` counting as already read), no faster than ``rate``
    bytes/s (0: unpaced); (bytes read, sha256).  Stops early on EOF or once ``deadline``
    (monotonic) passes."""
    h = hashlib.sha256(prefix)
    got = len(prefix)
    start = time.monotonic()
    while got < n:
        if deadline is not None and time.monotonic() > deadline:
            break
        data = sock.recv(min(chunk, n - got))
        if not data:
            break
        got += len(data)
        h.update(data)
        if rate:
            ahead = got / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    return got, h.hexdigest()


def read_line(sock: socket.socket, limit: int = 256) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        c = sock.recv(1)
        if not c or len(line) > limit:
            return b""
        line += c
    return line.strip()


class _Server:
    """A listening socket on 127.0.0.1 and a thread per accepted connection."""

    kind = socket.SOCK_STREAM

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, self.kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.errors: List[str] = []
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.listen(1024)
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.serve(conn)
            except OSError as e:
                if not self.closed:
                    self.errors.append(f"{type(self).__name__}: {e}")

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class TcpService(_Server):
    """The service behind a tcp or stcp proxy (commands in the module docstring)."""

    def serve(self, conn: socket.socket) -> None:
        words = read_line(conn).split()
        if not words:
            return
        if words[0] == b"D":
            send_pattern(conn, int(words[1]))
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)
        elif words[0] == b"U":
            n, rate = int(words[1]), float(words[2])
            got, sha = read_paced(conn, n, rate)
            conn.sendall(f"{got} {sha}\n".encode())
        elif words[0] == b"E":
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)


class HttpService(_Server):
    """``GET /n`` -> ``n`` payload bytes, keep-alive (a plain HTTP/1.1 origin)."""

    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1]
            n = int(path.strip(b"/") or b"0")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % n)
            send_pattern(conn, n)


class UdpSink(_Server):
    """Reads datagrams at most ``rate`` per second (0: as fast as it can), counts them, echoes
    :data:`PROBE`; a small receive buffer so that what it does not take is dropped by the
    kernel, not kept."""

    kind = socket.SOCK_DGRAM

    def __init__(self, rate: float = 0) -> None:
        self.rate = rate
        self.received = 0
        self.bytes = 0
        super().__init__()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

    def _run(self) -> None:
        due = time.monotonic()  # when the next datagram may be read: no credit piles up
        while not self.closed:
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                return
            if data == PROBE:
                self.sock.sendto(data, peer)
                continue
            self.received += 1
            self.bytes += len(data)
            if self.rate:
                now = time.monotonic()
                due = max(due, now) + 1 / self.rate
                if due - now > 0.01:  # sleep in slices the scheduler keeps
                    time.sleep(due - now)


def udp_probe(port: int, timeout: float) -> bool:
    """One :data:`PROBE` datagram to ``port`` comes back within ``timeout`` seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        try:
            s.send(PROBE)
            return s.recv(64) == PROBE
        except OSError:
            return False


def udp_flood(port: int, size: int, seconds: float, rate: float = 0) -> int:
    """Send ``size``-byte datagrams to ``port`` for ``seconds`` (at most ``rate`` per second,
    0: as fast as the socket takes them); the number sent."""
    payload = BLOCK[:size]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for _ in range(64):
                try:
                    s.send(payload)
                    sent += 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    return sent


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Watcher:
    """Samples ``VmRSS`` of ``pids`` (name -> pid) every ``interval`` seconds on a thread:
    :meth:`mark` sets each baseline to the current value, :attr:`peak` keeps the largest seen
    since; ``on_sample`` (if given) sees every sample (time, {name: KiB})."""

    def __init__(self, pids: Dict[str, int], interval: float = 0.02,
                 on_sample: Optional[Callable[[float, Dict[str, int]], None]] = None) -> None:
        self.pids = pids
        self.interval = interval
        self.on_sample = on_sample
        self.base: Dict[str, int] = {}
        self.peak: Dict[str, int] = {}
        self.last: Dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sample()
        self.mark()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> Dict[str, int]:
        now = {}
        for name, pid in self.pids.items():
            try:
                now[name] = rssKiB(pid)
            except OSError:
                continue
        with self._lock:
            self.last = now
            for name, kib in now.items():
                self.peak[name] = max(self.peak.get(name, 0), kib)
        if self.on_sample is not None:
            self.on_sample(time.monotonic(), now)
        return now

    def mark(self) -> None:
        with self._lock:
            self.base = dict(self.last)
            self.peak = dict(self.last)

    def growth_mib(self) -> Dict[str, float]:
        """Peak minus baseline per process since :meth:`mark`, in MiB."""
        with self._lock:
            return {n: (self.peak[n] - self.base[n]) / 1024 for n in self.base if n in self.peak}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def http_get_paced(port: int, host: str, n: int, rate: float, timeout: float) -> Tuple[int, str]:
    """``GET /n`` with ``Host: host`` through a vhost at ``port``, the body read at ``rate``
    bytes/s; (body bytes read, their sha256).  Raises OSError unless the status is 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, host.encode()))
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = s.recv(4096)
            if not data:
                raise OSError(f"connection closed before the response head ({buf[:60]!r})")
            buf += data
        head, first = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            status = head.split(b"\r\n", 1)[0].decode(errors="replace")
            raise OSError(f"answered {status}")
        return read_paced(s, n, rate, deadline=time.monotonic() + timeout, prefix=first)
