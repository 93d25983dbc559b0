"""The garbage collector of ``twistd frps|frpc``: tuned for bursts of connections.

Every connection leaves reference cycles behind (a Twisted protocol and its transport point at
each other, so do Deferreds and their callbacks), which only the cyclic collector frees, and a
burst of connections allocates objects fast enough to run it hundreds of times a second.  Each
full collection walks every object of the process, including the ~100 000 that Twisted and
frptw's modules make at start-up and keep for ever: measured in-process during bursts of 1000
connections, collection took 25-30 % of the time.  So, once the program has started:

* ``gc.freeze()`` moves everything allocated at start-up out of the collector's sight (it is
  never garbage), so that collections only look at what connections made;
* the first generation is collected after :data:`YOUNG_THRESHOLD` allocations instead of 700,
  and full collections come 5 times less often, which a connection's short-lived cycles do not
  need.

With ``twistd`` on a loaded 2-CPU machine, 1000 simultaneous connects: p99 to the first answer
through an stcp visitor 1.80 -> 1.05 s, a tcp proxy 1.52 -> 1.02 s, the HTTP vhost 1.55 ->
1.22 s (medians of 3 alternating runs each).  Garbage still goes: cycles are collected after at
most :data:`YOUNG_THRESHOLD` allocations, so memory stays bounded.

Connections that lived long enough (10 000 held through one proxy, say) reach the oldest
generation, and their cycles are garbage there once they close.  Python collects that generation
only after many younger collections, so a process that goes quiet after a burst would keep it
for ever: with 10 000 connections through one tcp proxy, frps and frpc stayed +63/+64 MiB above
their idle RSS.  :class:`MemorySweep` therefore runs a full collection every
:data:`SWEEP_INTERVAL` seconds when (and only when) anything was allocated since the last one,
and then asks the C allocator to give free pages back (glibc's ``malloc_trim``; nothing where
there is none): +19/+22 MiB 40 s after the close (medians of 3; Go frp 0.65: +356/+396).
What stays is CPython's small-object allocator: its 1 MiB arenas go back only when empty, and a
few objects made late in the burst (the pool's fresh work connections) keep 10-15 of them.
Under ``PYTHONMALLOC=malloc`` everything goes through glibc, which the trim empties page by
page: +5.5/+4.0 MiB (``bench/bench_burst.py --parts held --malloc-variant``).  A sweep costs
what a full collection costs: 0.2-0.35 s with 10 000 connections held, once every 30 s while
they are busy.

This is an effect on the whole process, so the tap applies it, not the embeddable services.
"""

import ctypes
import gc
import time
from typing import Callable, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

#: Allocations (net of deallocations) between two collections of the youngest generation.
YOUNG_THRESHOLD = 20_000
#: Collections of a generation between two of the next (Python's defaults: 10, 10).
OLDER_THRESHOLDS = (20, 50)
#: Seconds between two looks at whether a full collection is due.
SWEEP_INTERVAL = 30.0

log = Logger(namespace="frptw.memory")


def tuneCollector(collector=gc) -> None:
    """Freeze what exists now and raise the thresholds; call once start-up is done."""
    collector.freeze()
    collector.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def mallocTrim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim`` (pages of free heap back to the system), or None on a C
    library without one."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:  # no C library to look in (a static interpreter)
        return None


class MemorySweep:
    """Full collections when the process has been busy, so that what a closed burst of
    connections left in the oldest generation goes back to the system while it is quiet.

    ``sweep`` runs every ``interval`` seconds on ``clock``; it collects only when the youngest
    generation was collected since the previous sweep (allocation went on), so an idle process
    costs nothing."""

    def __init__(self, clock: IReactorTime, interval: float = SWEEP_INTERVAL, collector=gc,
                 trim: Optional[Callable[[int], int]] = None) -> None:
        self._collector = collector
        self._trim = trim
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = clock
        self._interval = interval
        self._seen = self._youngCollections()

    def _youngCollections(self) -> int:
        return self._collector.get_stats()[0]["collections"]

    def start(self) -> None:
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def sweep(self) -> bool:
        """Collect everything and trim the heap if anything was allocated since the last
        sweep; say whether it did."""
        young = self._youngCollections()
        if young == self._seen:
            return False
        self._seen = young
        started = time.perf_counter()
        freed = self._collector.collect()
        if self._trim is not None:
            self._trim(0)
        log.debug("memory sweep: {freed} objects in cycles freed in {ms:.1f} ms", freed=freed,
                  ms=(time.perf_counter() - started) * 1000)
        return True


def manageMemory(clock: IReactorTime) -> MemorySweep:
    """The program's memory policy, once it has started: tune the collector and sweep."""
    tuneCollector()
    sweep = MemorySweep(clock, trim=mallocTrim())
    sweep.start()
    return sweep
