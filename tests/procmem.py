"""The memory of other processes, read from ``/proc``: what the backpressure tests measure of
the frps and frpc they start (the test process's own memory would say nothing about theirs)."""

from typing import Dict

from twisted.internet.task import LoopingCall


def rssKiB(pid: int) -> int:
    """``VmRSS`` of process ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError(f"no VmRSS for pid {pid}")


class PeakRss:
    """Samples ``VmRSS`` of some processes (name -> pid) every ``interval`` seconds on the
    reactor from :meth:`start` on, and keeps each one's growth over its value at the start."""

    def __init__(self, reactor, pids: Dict[str, int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.base: Dict[str, int] = {}
        self.peak: Dict[str, int] = {}
        self._loop = LoopingCall(self.sample)
        self._loop.clock = reactor

    def start(self) -> None:
        self.base = {name: rssKiB(pid) for name, pid in self.pids.items()}
        self.peak = dict(self.base)
        self._loop.start(self.interval, now=False)

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak[name] = max(self.peak[name], rssKiB(pid))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def growthMiB(self) -> Dict[str, float]:
        """Peak minus start per process, in MiB."""
        return {name: (self.peak[name] - self.base[name]) / 1024 for name in self.base}
