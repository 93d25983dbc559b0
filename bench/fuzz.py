"""The on-demand fuzz run: N generated inputs per parser target of tests/fuzztargets.py.

A plain mutation loop rather than hypothesis: hypothesis spends most of its time generating and
shrinking, a million examples per target would take hours; this loop runs at the parser's own
speed.  Each input is either random bytes or a seed with 1-4 spliced edits (the same
:func:`tests.fuzztargets.splice` the CI smoke run's strategy uses).  The run is deterministic
for a given ``--seed``, and a failure prints a reproducer line.

    python bench/fuzz.py                       # 1,000,000 inputs per target
    python bench/fuzz.py -n 100000 yamux kcp   # some targets only

Prints a markdown table: inputs, failures, inputs/s per target, and the process's peak RSS
after each target (bounded memory: it must not grow with the number of inputs).
"""

import argparse
import os
import random
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fuzztargets import TARGETS, FuzzFailure, check, seeds, splice  # noqa: E402


def generate(rng: random.Random, pool: tuple) -> bytes:
    """One input: random bytes (1 in 8) or a seed with a few spliced edits."""
    if rng.random() < 0.125:
        return rng.randbytes(rng.randrange(513))
    data = rng.choice(pool)
    for _ in range(rng.randint(1, 4)):
        start = rng.randrange(len(data) + 1)
        data = splice(data, start, start + rng.choice((0, 1, 1, 2, 4, 16)), rng.randbytes(rng.choice((0, 1, 1, 2, 4))))
    return data


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fuzz(name: str, count: int, rng: random.Random, max_failures: int) -> tuple:
    """Run ``count`` inputs through one target: (failures, seconds)."""
    target, pool = TARGETS[name], seeds(name)
    failures = 0
    start = time.perf_counter()
    for _ in range(count):
        try:
            check(target, generate(rng, pool))
        except FuzzFailure as e:
            failures += 1
            if failures <= max_failures:
                print(f"FAIL {e}", file=sys.stderr, flush=True)
    return failures, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help=f"targets (default all): {' '.join(TARGETS)}")
    parser.add_argument("-n", "--inputs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=14, help="random seed (the run is deterministic)")
    parser.add_argument("--show", type=int, default=3, help="failures printed per target")
    args = parser.parse_args()
    names = args.targets or list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown targets: {' '.join(unknown)}")
    print("| target | inputs | failures | inputs/s | peak RSS after (MiB) |\n|---|---:|---:|---:|---:|", flush=True)
    total = 0
    for name in names:
        failures, seconds = fuzz(name, args.inputs, random.Random(f"{args.seed}:{name}"), args.show)
        total += failures
        print(f"| {name} | {args.inputs} | {failures} | {args.inputs / seconds:,.0f} | {peak_rss_mib():.0f} |",
              flush=True)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
