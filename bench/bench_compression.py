"""What lz4 buys over snappy for ``use_compression`` between two frptw ends (run on demand).

frptw ends negotiate lz4 (:mod:`frptw.wire.codec`); with Go frp the stream stays snappy.  This
moves the same 64 KiB writes through each codec, compressed by one instance and decompressed
by another, as a work connection does, and reports CPU throughput (MB of plaintext per CPU
second of encode + decode, best of ``--repeat``) and the compressed size, per payload:

* ``repeating``: JSON log lines (an API's access log: highly compressible);
* ``text``: word salad (compresses to about 0.8 with snappy);
* ``random``: incompressible (what most TLS or media traffic looks like to frp).

    python bench/bench_compression.py [--mib 32] [--repeat 5]

CPU time (``time.process_time``) is used, so other load on the machine matters less than it
does for wall-clock rows.
"""

import argparse
import json
import os
import random
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from frptw.wire.codec import StreamCodec, compressor  # noqa: E402

CHUNK = 64 * 1024


def payloads(total: int) -> Dict[str, bytes]:
    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    text = bytearray()
    while len(text) < total:
        text += rng.choice(words) + b" "
    logs = bytearray()
    i = 0
    while len(logs) < total:
        logs += json.dumps({"ts": 1700000000 + i, "level": "info", "msg": "request served",
                            "path": f"/api/v1/items/{i % 97}", "status": 200, "bytes": i * 7 % 5000}).encode() + b"\n"
        i += 1
    return {"repeating": bytes(logs[:total]), "text": bytes(text[:total]), "random": rng.randbytes(total)}


def measure(make: Callable[[], StreamCodec], data: bytes, repeat: int) -> tuple:
    chunks: List[bytes] = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    best, size = float("inf"), 0
    for _ in range(repeat):
        sender, receiver = make(), make()
        start = time.process_time()
        size = out = 0
        for chunk in chunks:
            wire = sender.encode(chunk)
            size += len(wire)
            out += len(receiver.decode(wire))
        best = min(best, time.process_time() - start)
        if out != len(data):
            raise AssertionError(f"decoded {out} of {len(data)} bytes")
    return len(data) / best / 1e6, size / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.mib} MiB per payload in 64 KiB writes, best of {args.repeat}; MB/s = plaintext MB per CPU second"
          f" (encode + decode); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'payload':<11}{'snappy MB/s':>12}{'size':>7}{'lz4 MB/s':>10}{'size':>7}{'lz4/snappy speed':>18}")
    for name, data in payloads(args.mib * 1024 * 1024).items():
        snappy, snappySize = measure(lambda: compressor("snappy"), data, args.repeat)
        lz4, lz4Size = measure(lambda: compressor("lz4"), data, args.repeat)
        print(f"{name:<11}{snappy:>12.0f}{snappySize:>7.3f}{lz4:>10.0f}{lz4Size:>7.3f}{lz4 / snappy:>17.2f}x")


if __name__ == "__main__":
    main()
