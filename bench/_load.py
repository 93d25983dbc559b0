"""Load generator and backend service for ``bench/bench_tcp.py`` (a tool, not frptw runtime code).

One file, several sub-commands, each run as its own OS process by the bench so that the load
never shares an interpreter (or a GIL) with what it measures::

    serve       the "local service" behind frpc: TCP on P, a UDP echo on U; prints
                {"port": P, "udp_port": U} and serves until killed
    download    N connections each ask the service for B bytes; bulk throughput at the receiver
    latency     64-byte ping-pong over one connection; round-trip percentiles
    connrate    W workers loop connect / one small echo / close; completed cycles per second
                (with one worker: sequential connections, each one's first-echo latency)
    hold        open N connections, one echo each, keep them open until stdin says "release"
    udplatency  one datagram at a time to a UDP echo; round-trip percentiles, losses
    udprate     a window of W datagrams in flight to a UDP echo; echoed datagrams/s, losses

Every client prints one JSON object per line on stdout (``hold`` prints two: when its
connections are up, and after release).  Nothing here imports Twisted or asyncio: plain
non-blocking sockets on one ``selectors`` loop (epoll) keep the generator's own cost per byte
and per connection as low as Python allows, and the bench's raw-loopback row (no frp in the
path) shows the ceiling this tool reaches on the machine.

Service protocol (first byte of a connection picks its mode):

* ``b"D" + uint64 BE n``: the service streams n payload bytes, then waits for the client to
  close.  Throughput is measured in this direction (service -> frpc -> frps -> user, frp's
  usual direction); the receiver counts, so the figure is what actually arrived.
* ``b"E"``: every following byte is echoed (latency, connrate, hold).
* ``b"\x16"`` (a TLS ClientHello): echoed whole, first byte included (``bench_burst``'s HTTPS
  vhost probe, which only needs the bytes back through frps and frpc).
* ``b"G"`` (``GET ...``): an HTTP request; once its head is in, answered with a 200 whose body
  is ``burst-ok`` and closed (``bench_burst``'s HTTP vhost probe).

The UDP echo sends every datagram back to its source, unchanged.  The UDP clients number their
datagrams (the first 8 bytes, big endian) so that an echo is matched to what it answers: a
datagram with no echo within ``--timeout`` is *lost* (an echo arriving after that is *late*
and ignored), which is how a proxy's dropped datagrams show up instead of hanging the client.
"""

import argparse
import errno
import json
import random
import resource
import selectors
import socket
import sys
import time
from typing import Dict, List, Optional

#: Service write slice; the kernel takes what fits in the socket buffer.
SEND_SLICE = 4 * 1024 * 1024
#: Payload the service streams from, cyclically; generated once at start.
PAYLOAD_SIZE = 4 * 1024 * 1024
#: A connect + exchange that takes longer than this is counted as failed (connrate, hold).
CYCLE_TIMEOUT = 10.0
_HEADER = 9
#: The service's whole answer to an HTTP request (``G`` mode).
HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nburst-ok"


def raise_nofile() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (1000+ sockets per process here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def make_payload(kind: str, size: int = PAYLOAD_SIZE) -> bytes:
    """The bytes the service streams: ``random`` (incompressible), ``text`` (word salad,
    snappy shrinks it about 2x), or ``mixed`` (alternating 32 KiB blocks of the two), so that
    use_compression is neither free nor hopeless."""
    rng = random.Random(20250101)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(4000)]

    def text(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += rng.choice(words) + b" "
        return bytes(out[:n])

    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        return text(size)
    block = 32 * 1024
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(block) if (len(out) // block) % 2 == 0 else text(block)
    return bytes(out[:size])


def percentiles(samples: List[float], points=(50, 90, 99)) -> Dict[str, float]:
    """Nearest-rank percentiles (plus min/mean/max) of ``samples``."""
    if not samples:
        return {}
    s = sorted(samples)
    out = {f"p{p}": s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] for p in points}
    out.update(min=s[0], max=s[-1], mean=sum(s) / len(s), n=len(s))
    return out


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- the service -------------------------------------------------------------------------------


class _ServiceConn:
    """One accepted connection of the service: header, then stream or echo."""

    __slots__ = ("sock", "sel", "payload", "head", "mode", "left", "offset", "pending")

    def __init__(self, sock: socket.socket, sel: selectors.BaseSelector, payload: memoryview) -> None:
        self.sock = sock
        self.sel = sel
        self.payload = payload
        self.head = b""
        self.mode = b""
        self.left = 0
        self.offset = 0
        self.pending = b""
        sel.register(sock, selectors.EVENT_READ, self)

    def close(self) -> None:
        self.sel.unregister(self.sock)
        self.sock.close()

    def on_event(self, events: int) -> None:
        try:
            if events & selectors.EVENT_WRITE:
                self.on_writable()
            elif events & selectors.EVENT_READ:
                self.on_readable()
        except OSError:
            # The client hung up mid-stream (download cut at its deadline): normal here.
            self.close()

    def on_readable(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.close()
            return
        if self.mode == b"E":
            self.echo(data)
            return
        if self.mode == b"D":
            return  # the client may say nothing more; ignore stray bytes
        self.head += data
        if self.head[:1] == b"E":
            self.mode = b"E"
            rest, self.head = self.head[1:], b""
            if rest:
                self.echo(rest)
        elif self.head[:1] == b"\x16":
            self.mode = b"E"
            whole, self.head = self.head, b""
            self.echo(whole)
        elif self.head[:1] == b"G":
            if b"\r\n\r\n" in self.head:
                self.sock.send(HTTP_ANSWER)  # small: fits the fresh socket buffer
                self.close()
            elif len(self.head) > 65536:
                self.close()
        elif self.head[:1] == b"D" and len(self.head) >= _HEADER:
            self.mode = b"D"
            self.left = int.from_bytes(self.head[1:_HEADER], "big")
            self.head = b""
            self.sel.modify(self.sock, selectors.EVENT_WRITE, self)
        elif self.head[:1] not in (b"", b"D"):
            self.close()

    def echo(self, data: bytes) -> None:
        sent = self.sock.send(data)
        if sent < len(data):
            self.pending = data[sent:]
            self.sel.modify(self.sock, selectors.EVENT_WRITE, self)

    def on_writable(self) -> None:
        if self.mode == b"E":
            sent = self.sock.send(self.pending)
            self.pending = self.pending[sent:]
            if not self.pending:
                self.sel.modify(self.sock, selectors.EVENT_READ, self)
            return
        size = len(self.payload)
        for _ in range(4):  # a few slices per wakeup, then let other connections run
            end = min(size, self.offset + self.left, self.offset + SEND_SLICE)
            try:
                sent = self.sock.send(self.payload[self.offset : end])
            except BlockingIOError:
                return
            self.left -= sent
            self.offset = (self.offset + sent) % size
            if self.left == 0:
                self.sel.modify(self.sock, selectors.EVENT_READ, self)
                return


class _UDPEcho:
    """The service's UDP port: every datagram goes straight back to its sender."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket, sel: selectors.BaseSelector) -> None:
        self.sock = sock
        sel.register(sock, selectors.EVENT_READ, self)

    def on_event(self, events: int) -> None:
        for _ in range(256):  # drain what is queued, then let the TCP connections run
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP error of an earlier send (the sender went away): no datagram lost here
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass  # a full send buffer drops the echo, as a network would; the client counts it lost


def serve(args: argparse.Namespace) -> None:
    payload = memoryview(make_payload(args.payload))
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.host, args.udp_port))
    udp.setblocking(False)
    _UDPEcho(udp, sel)
    emit({"port": listener.getsockname()[1], "udp_port": udp.getsockname()[1]})
    while True:
        for key, events in sel.select():
            if key.data is not None:
                key.data.on_event(events)
                continue
            for _ in range(64):
                try:
                    sock, _addr = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:  # EMFILE & co: drop this accept, keep serving
                    if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        break
                    raise
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _ServiceConn(sock, sel, payload)


# -- clients -----------------------------------------------------------------------------------


def download(args: argparse.Namespace) -> None:
    """``conns`` connections each fetch ``bytes // conns`` bytes; stop early at the deadline.

    ``--verify`` compares every byte with the service's payload (the bench does it once per
    tunnel, untimed, so that a fast proxy is also a correct one)."""
    per_conn = args.bytes // args.conns
    expected = memoryview(make_payload(args.payload)) if args.verify else None
    socks = [socket.create_connection((args.host, args.port), timeout=10) for _ in range(args.conns)]
    sel = selectors.DefaultSelector()
    got = {}
    buf = bytearray(1 << 20)
    start = time.perf_counter()
    for s in socks:
        s.sendall(b"D" + per_conn.to_bytes(8, "big"))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = 0
    deadline = start + args.seconds
    first_byte: Optional[float] = None
    finished = 0
    error = None
    now = start
    while finished < len(socks) and now < deadline and error is None:
        for key, _ in sel.select(timeout=max(0.0, deadline - now)):
            s = key.fileobj
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError as e:
                error = f"connection error after {got[s]} bytes: {e}"
                break
            if n == 0:
                error = f"connection closed after {got[s]} of {per_conn} bytes"
                break
            if first_byte is None:
                first_byte = time.perf_counter()
            if expected is not None and not _matches(expected, got[s], buf, n):
                error = f"received bytes differ from the service's payload near offset {got[s]}"
                break
            got[s] += n
            if got[s] >= per_conn:
                sel.unregister(s)
                finished += 1
        now = time.perf_counter()
    elapsed = now - start
    total = sum(got.values())
    for s in socks:
        s.close()
    emit(
        {
            "bytes": total,
            "seconds": elapsed,
            "mbps": total / elapsed / 1e6 if elapsed > 0 else 0.0,
            "complete": finished == len(socks),
            "first_byte_ms": None if first_byte is None else (first_byte - start) * 1e3,
            "error": error,
        }
    )


def _matches(payload: memoryview, offset: int, buf: bytearray, n: int) -> bool:
    """Whether ``buf[:n]`` equals the cyclic payload stream from ``offset`` on."""
    size = len(payload)
    view = memoryview(buf)
    done = 0
    while done < n:
        start = (offset + done) % size
        take = min(n - done, size - start)
        if view[done : done + take] != payload[start : start + take]:
            return False
        done += take
    return True


def latency(args: argparse.Namespace) -> None:
    """Blocking ping-pong of ``size`` bytes; TCP_NODELAY so nothing waits for Nagle."""
    s = socket.create_connection((args.host, args.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = (bytes(range(256)) * (args.size // 256 + 1))[: args.size]
    buf = bytearray(args.size)
    view = memoryview(buf)
    s.sendall(b"E")
    samples: List[float] = []
    deadline = time.perf_counter() + args.seconds
    total = args.warmup + args.count
    i = 0
    clock = time.perf_counter_ns
    while i < total:
        t0 = clock()
        s.sendall(msg)
        got = 0
        while got < args.size:
            n = s.recv_into(view[got:])
            if n == 0:
                emit({"error": f"closed after {i} round trips", "samples": len(samples)})
                return
            got += n
        t1 = clock()
        i += 1
        if i > args.warmup:
            samples.append((t1 - t0) / 1e3)
            if t1 / 1e9 > deadline:
                break
    s.close()
    emit({"us": percentiles(samples), "round_trips": i, "error": None if samples else "no samples"})


class _Cycle:
    """One worker's connection: connect, send ``msg``, read its echo, then close or keep."""

    __slots__ = ("sock", "started", "got", "stage")

    def __init__(self) -> None:
        self.sock: Optional[socket.socket] = None
        self.started = 0.0
        self.got = 0
        self.stage = ""


class _Cycler:
    """Runs ``workers`` concurrent connect/echo cycles on one selector.

    ``keep`` = hold each finished connection open instead of closing it (``hold``);
    ``limit`` = stop starting new cycles after that many (``hold``), else run until stopped.
    ``size`` = the bytes echoed per cycle (the service's mode byte ``E`` goes out first, in the
    same write).
    """

    def __init__(self, host: str, port: int, workers: int, keep: bool, limit: Optional[int],
                 size: int = 15) -> None:
        self.addr = (host, port)
        self.msg = b"E" + (b"0123456789abcdef" * (size // 16 + 1))[:size]
        self.sel = selectors.DefaultSelector()
        self.keep = keep
        self.limit = limit
        self.started = 0
        self.done = 0
        self.errors: Dict[str, int] = {}
        self.kept: List[socket.socket] = []
        self.durations: List[float] = []
        self.workers = [_Cycle() for _ in range(workers)]
        #: Workers between cycles; restarted by :meth:`run`'s loop (never recursively, so a
        #: port that refuses at once just spins until the deadline, counting errors).
        self.idle: List[_Cycle] = list(self.workers)

    def fail(self, cycle: _Cycle, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1
        self.finish(cycle, ok=False)

    def finish(self, cycle: _Cycle, ok: bool) -> None:
        self.sel.unregister(cycle.sock)
        if ok:
            self.done += 1
            self.durations.append(time.perf_counter() - cycle.started)
        if ok and self.keep:
            self.kept.append(cycle.sock)
        else:
            cycle.sock.close()
        cycle.sock = None
        self.idle.append(cycle)

    def begin(self, cycle: _Cycle) -> None:
        self.started += 1
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cycle.sock, cycle.got, cycle.stage = s, 0, "connect"
        cycle.started = time.perf_counter()
        err = s.connect_ex(self.addr)
        self.sel.register(s, selectors.EVENT_WRITE, cycle)
        if err not in (0, errno.EINPROGRESS):
            self.fail(cycle, errno.errorcode.get(err, str(err)))

    def step(self, cycle: _Cycle) -> None:
        s = cycle.sock
        if cycle.stage == "connect":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(cycle, errno.errorcode.get(err, str(err)))
                return
            s.send(self.msg)  # 16 bytes always fit in a fresh socket buffer
            cycle.stage = "echo"
            self.sel.modify(s, selectors.EVENT_READ, cycle)
            return
        try:
            data = s.recv(64)
        except BlockingIOError:
            return
        except OSError as e:
            self.fail(cycle, errno.errorcode.get(e.errno, str(e)))
            return
        if not data:
            self.fail(cycle, "closed before echo")
            return
        cycle.got += len(data)
        if cycle.got >= len(self.msg) - 1:
            self.finish(cycle, ok=True)

    def run(self, seconds: float) -> float:
        """Cycle until ``seconds`` pass (or, with a limit, until all cycles ended); return the
        time taken."""
        start = time.perf_counter()
        deadline = start + seconds
        next_sweep = start + 0.25
        while True:
            idle, self.idle = self.idle, []
            for cycle in idle:
                if self.limit is not None and self.started >= self.limit:
                    self.idle.append(cycle)
                else:
                    self.begin(cycle)
            now = time.perf_counter()
            if now >= deadline:
                break
            if len(self.idle) == len(self.workers):
                break  # the limit is reached and every cycle has ended
            for key, _ in self.sel.select(timeout=min(0.25, deadline - now)):
                self.step(key.data)
            if now >= next_sweep:
                next_sweep = now + 0.25
                for cycle in self.workers:
                    if cycle.sock is not None and now - cycle.started > CYCLE_TIMEOUT:
                        self.fail(cycle, "timeout")
        elapsed = time.perf_counter() - start
        for cycle in self.workers:
            if cycle.sock is not None:
                self.sel.unregister(cycle.sock)
                cycle.sock.close()
                cycle.sock = None
        return elapsed


def connrate(args: argparse.Namespace) -> None:
    cycler = _Cycler(args.host, args.port, args.workers, keep=False, limit=None, size=args.size)
    elapsed = cycler.run(args.seconds)
    emit(
        {
            "completed": cycler.done,
            "seconds": elapsed,
            "per_second": cycler.done / elapsed,
            "errors": cycler.errors,
            "cycle_ms": {k: v * 1e3 if k != "n" else v for k, v in percentiles(cycler.durations).items()},
        }
    )


def hold(args: argparse.Namespace) -> None:
    """Open ``conns`` echo-checked connections (``concurrency`` at a time), report, then wait
    for a line on stdin before checking how many survived and closing them."""
    cycler = _Cycler(args.host, args.port, args.concurrency, keep=True, limit=args.conns)
    elapsed = cycler.run(args.seconds)
    emit({"open": len(cycler.kept), "seconds": elapsed, "errors": cycler.errors})
    sys.stdin.readline()
    alive = 0
    for s in cycler.kept:
        try:
            alive += s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    emit({"alive_at_release": alive})


# -- UDP clients -------------------------------------------------------------------------------


class _Datagrams:
    """A connected non-blocking UDP socket sending numbered datagrams of ``size`` bytes."""

    def __init__(self, host: str, port: int, size: int) -> None:
        if size < 8:
            raise SystemExit("--size must be at least 8 (the sequence number)")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.padding = (bytes(range(256)) * (size // 256 + 1))[: size - 8]
        self.size = size
        self.next_seq = 0
        self.short = 0  # echoes of another length than sent (a proxy truncating them)

    def send(self) -> int:
        """Send the next datagram; return its number (a full send buffer counts as sent:
        it is then lost like any other drop)."""
        seq = self.next_seq
        self.next_seq += 1
        try:
            self.sock.send(seq.to_bytes(8, "big") + self.padding)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # dropped (or an ICMP error from an earlier datagram): it will time out
        return seq

    def receive(self, timeout: float) -> List[int]:
        """The numbers of the echoes that arrive within ``timeout`` (all that are queued)."""
        got: List[int] = []
        if not self.sel.select(timeout=max(0.0, timeout)):
            return got
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return got
            except ConnectionRefusedError:
                continue  # ICMP port unreachable: the proxy's port is not (yet) there
            if len(data) != self.size:
                self.short += 1
                continue
            got.append(int.from_bytes(data[:8], "big"))

    def probe(self, seconds: float) -> Optional[float]:
        """Send a datagram every 50 ms until one is echoed; the seconds that took, or None.

        A udp proxy forwards nothing until frps has its work connection (about half a second
        after the proxy registered, in frp); the measurement must not count that as loss."""
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            self.send()
            if self.receive(0.05):
                # Let stragglers of the other probes arrive, so they are not taken for echoes later.
                while self.receive(0.05):
                    pass
                return time.perf_counter() - start
        return None


def udplatency(args: argparse.Namespace) -> None:
    """One datagram in flight at a time: ``count`` round trips after ``warmup``."""
    d = _Datagrams(args.host, args.port, args.size)
    waited = d.probe(args.probe_seconds)
    if waited is None:
        emit({"error": f"no datagram echoed within {args.probe_seconds:.0f}s"})
        return
    samples: List[float] = []
    lost = late = 0
    total = args.warmup + args.count
    deadline = time.perf_counter() + args.seconds
    clock = time.perf_counter_ns
    for i in range(total):
        t0 = clock()
        seq = d.send()
        give_up = t0 + args.timeout * 1e9
        while True:
            echoes = d.receive((give_up - clock()) / 1e9)
            if seq in echoes:
                t1 = clock()
                late += len(echoes) - 1
                if i >= args.warmup:
                    samples.append((t1 - t0) / 1e3)
                break
            late += len(echoes)
            if clock() >= give_up:
                lost += i >= args.warmup
                break
        if time.perf_counter() > deadline:
            break
    emit({"us": percentiles(samples), "sent": len(samples) + lost, "lost": lost, "late": late,
          "short": d.short, "probe_ms": waited * 1e3, "error": None if samples else "no samples"})


def udprate(args: argparse.Namespace) -> None:
    """Keep ``window`` datagrams in flight for ``seconds``: each echo (or each timeout) frees a
    slot for the next datagram.  The window bounds what a proxy has to queue, so the rate is
    what it forwards without being flooded; a flood would only measure its drop policy."""
    d = _Datagrams(args.host, args.port, args.size)
    waited = d.probe(args.probe_seconds)
    if waited is None:
        emit({"error": f"no datagram echoed within {args.probe_seconds:.0f}s"})
        return
    in_flight: Dict[int, float] = {}
    first = d.next_seq
    received = drained = lost = late = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    next_sweep = start + args.timeout / 4
    now = start
    while True:
        if now < deadline:
            while len(in_flight) < args.window:
                in_flight[d.send()] = now
        elif not in_flight:
            break
        for seq in d.receive(min(0.05, args.timeout / 4)):
            if in_flight.pop(seq, None) is None:
                late += 1
            elif now < deadline:
                received += 1
            else:
                drained += 1  # the last window's echoes: not lost, but not in the rate either
        now = time.perf_counter()
        if now >= next_sweep:
            next_sweep = now + args.timeout / 4
            for seq in [s for s, sent in in_flight.items() if now - sent > args.timeout]:
                del in_flight[seq]
                lost += 1
    elapsed = deadline - start
    emit({"per_second": received / elapsed, "mbps": received * args.size / elapsed / 1e6,
          "received": received, "sent": d.next_seq - first, "drained": drained, "lost": lost, "late": late,
          "short": d.short, "seconds": elapsed, "window": args.window, "probe_ms": waited * 1e3,
          "error": None if received else "no datagram echoed"})


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, port_required: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=port_required, default=0)
        return p

    payloads = ("mixed", "random", "text")
    p = command("serve", serve, port_required=False)
    p.add_argument("--payload", choices=payloads, default="mixed")
    p.add_argument("--udp-port", type=int, default=0, help="port of the UDP echo (default: any free one)")
    p = command("download", download)
    p.add_argument("--verify", action="store_true", help="check the bytes against the service's payload")
    p.add_argument("--payload", choices=payloads, default="mixed", help="the service's payload (for --verify)")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p = command("latency", latency)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p = command("connrate", connrate)
    p.add_argument("--workers", type=int, default=50)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--size", type=int, default=15, help="bytes echoed per connection")
    p = command("hold", hold)
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0)
    udp = {}
    for name, func in (("udplatency", udplatency), ("udprate", udprate)):
        p = udp[name] = command(name, func)
        p.add_argument("--size", type=int, default=64, help="datagram size in bytes (at least 8)")
        p.add_argument("--seconds", type=float, default=3.0, help="measure for this long (udprate), at most (udplatency)")
        p.add_argument("--timeout", type=float, default=0.5, help="a datagram not echoed within this is lost")
        p.add_argument("--probe-seconds", type=float, default=10.0,
                       help="give up if no datagram is echoed within this (the proxy is not ready)")
    udp["udplatency"].add_argument("--count", type=int, default=1000)
    udp["udplatency"].add_argument("--warmup", type=int, default=100)
    udp["udprate"].add_argument("--window", type=int, default=64, help="datagrams in flight")
    args = parser.parse_args(argv)
    raise_nofile()
    args.func(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
