"""frps's statistics: what the dashboard and the Prometheus metrics report (config-reference.md §7, §9).

The model follows frp 0.65's in-memory collector (``pkg/metrics/mem``) and its Prometheus
collector (``pkg/metrics/prometheus``), kept as one set of objects:

* :class:`ServerStats` counts today's traffic of the whole server, the open user connections,
  and the proxies per type (a type whose count dropped to 0 stays listed, as in frp);
* one :class:`ProxyStats` per proxy name and type holds its traffic in and out for the last 7
  days (index 0 today), its open connections and its start and close times.  A proxy that goes
  offline keeps its record (status ``offline``) until :meth:`ServerStats.clearOffline` forgets
  it (the dashboard's "clear offline", or 7 days offline, checked every 12 hours); a proxy of
  the same name and type that comes back continues the same record, as frp does;
* the Prometheus series are the same objects, kept for the life of the process even after the
  dashboard forgot them (a Prometheus counter never goes back), which is what Go's collector
  does too: its series are never deleted.

Counting is cheap on purpose, since the data plane calls it once per chunk it forwards (never
per byte): :meth:`ProxyStats.addIn` is two integer additions.  Days change at local midnight
(:meth:`ServerStats.rollover`, driven by a timer on the clock and checked again before every
read), not on each addition as frp's ``DateCounter`` checks the time.

Nothing here touches the network; the clock (an ``IReactorTime``, ``task.Clock`` in tests)
gives the times and runs the two timers of :meth:`ServerStats.start`.
"""

import datetime
import time
from typing import Dict, Iterator, List, Optional, Tuple

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall

log = FrpLogger()

#: Days of traffic history kept per proxy (frp's ``ReserveDays``).
RESERVE_DAYS = 7

#: How often offline records are looked at, and how long offline they must have been to go.
CLEANUP_INTERVAL = 12 * 3600.0
OFFLINE_RETENTION = 7 * 24 * 3600.0


def local_day(seconds: float) -> int:
    """The local calendar day of the Unix time ``seconds`` (a day number)."""
    return datetime.date.fromtimestamp(seconds).toordinal()


def next_midnight(seconds: float) -> float:
    """The Unix time of the first local midnight after ``seconds`` (daylight saving aware)."""
    tomorrow = datetime.date.fromtimestamp(seconds) + datetime.timedelta(days=1)
    return time.mktime(tomorrow.timetuple())


def format_time(seconds: Optional[float]) -> str:
    """A time as frp's dashboard shows it: local ``MM-DD hh:mm:ss``, empty if never."""
    if seconds is None:
        return ""
    return time.strftime("%m-%d %H:%M:%S", time.localtime(seconds))


class DailyCounter:
    """A byte count per day for the last :data:`RESERVE_DAYS` days, plus a lifetime total.

    ``today`` is the only attribute the data plane touches; :meth:`shift` moves it into the
    history when a day ends.
    """

    __slots__ = ("today", "_past", "_retired")

    def __init__(self) -> None:
        self.today = 0
        #: Yesterday first.
        self._past: List[int] = [0] * (RESERVE_DAYS - 1)
        #: Counted before today, including what :meth:`forget` dropped from the history.
        self._retired = 0

    def shift(self, days: int) -> None:
        """``days`` days have ended since the last shift."""
        if days <= 0:
            return
        self._retired += self.today
        self._past = ([0] * (days - 1) + [self.today] + self._past)[:RESERVE_DAYS - 1]
        self.today = 0

    def days(self) -> List[int]:
        """The last 7 days, today first."""
        return [self.today] + self._past

    @property
    def lifetime(self) -> int:
        """Everything counted since the counter was made (history forgotten or not)."""
        return self._retired + self.today

    def forget(self) -> None:
        """Drop the daily history (the lifetime total stays)."""
        self._retired += self.today
        self.today = 0
        self._past = [0] * (RESERVE_DAYS - 1)


class ProxyStats:
    """The statistics of one proxy name and type (frp's ``ProxyStatistics``).

    The data plane calls :meth:`addIn` (bytes from a user towards the backend), :meth:`addOut`
    (bytes back to the user), :meth:`connectionOpened` and :meth:`connectionClosed`.
    """

    __slots__ = ("name", "type", "trafficIn", "trafficOut", "curConns", "lastStartTime", "lastCloseTime",
                 "registered", "connectionsSeen", "droppedDatagrams", "_server")

    def __init__(self, server: "ServerStats", name: str, type: str) -> None:
        self._server = server
        self.name = name
        self.type = type
        self.trafficIn = DailyCounter()
        self.trafficOut = DailyCounter()
        self.curConns = 0
        self.lastStartTime: Optional[float] = None
        self.lastCloseTime: Optional[float] = None
        #: 1 while a proxy of this name and type runs (``frp_server_proxy_counts_detailed``).
        self.registered = 0
        #: A user connection was counted once (Go shows the connection series from then on).
        self.connectionsSeen = False
        #: Datagrams from users a udp proxy dropped because frpc did not take them in time
        #: (its queue of 1024 was full), since the process started; frptw's own figure.
        self.droppedDatagrams = 0

    def addIn(self, n: int) -> None:
        self.trafficIn.today += n
        self._server.trafficIn.today += n

    def addOut(self, n: int) -> None:
        self.trafficOut.today += n
        self._server.trafficOut.today += n

    def addDropped(self) -> None:
        self.droppedDatagrams += 1

    def connectionOpened(self) -> None:
        self.connectionsSeen = True
        self.curConns += 1
        self._server.curConns += 1

    def connectionClosed(self) -> None:
        self.curConns -= 1
        self._server.curConns -= 1

    @property
    def offline(self) -> bool:
        """Closed and not started again (frp compares the two times; a flag cannot tie)."""
        return self.lastCloseTime is not None and not self.registered


class ServerStats:
    """The statistics of one frps; see the module docstring."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.trafficIn = DailyCounter()
        self.trafficOut = DailyCounter()
        self.curConns = 0
        #: Proxies running per type; a type stays once seen.
        self.proxyTypeCounts: Dict[str, int] = {}
        #: The dashboard's records, by proxy name (one type per name, the latest).
        self.proxies: Dict[str, ProxyStats] = {}
        #: Every (name, type) ever registered: the Prometheus series.
        self.series: Dict[Tuple[str, str], ProxyStats] = {}
        self._day = local_day(clock.seconds())
        self._midnight: Optional[IDelayedCall] = None
        self._cleanup: Optional[IDelayedCall] = None

    # -- events from the control sessions ------------------------------------------------------
    def proxyOpened(self, name: str, type: str) -> ProxyStats:
        """A proxy started: its record (continued if the name had one of the same type)."""
        self.proxyTypeCounts[type] = self.proxyTypeCounts.get(type, 0) + 1
        record = self.proxies.get(name)
        if record is None or record.type != type:
            record = self.series.get((name, type))
            if record is None:
                record = self.series[(name, type)] = ProxyStats(self, name, type)
            else:
                record.trafficIn.forget()
                record.trafficOut.forget()
            self.proxies[name] = record
        record.lastStartTime = self._clock.seconds()
        record.registered = 1
        return record

    def proxyClosed(self, record: ProxyStats) -> None:
        """The proxy of ``record`` stopped."""
        self.proxyTypeCounts[record.type] -= 1
        record.registered = 0
        record.lastCloseTime = self._clock.seconds()

    def clearOffline(self, olderThan: Optional[float] = None) -> Tuple[int, int]:
        """Forget the records of proxies offline for more than ``olderThan`` seconds (all
        offline ones when None); returns (forgotten, records before)."""
        now = self._clock.seconds()
        total = len(self.proxies)
        gone = [name for name, record in self.proxies.items()
                if record.offline and (olderThan is None or now - record.lastCloseTime > olderThan)]
        for name in gone:
            del self.proxies[name]
        return len(gone), total

    # -- reading ----------------------------------------------------------------------------
    def byType(self, type: str) -> Iterator[ProxyStats]:
        return (record for record in self.proxies.values() if record.type == type)

    def rollover(self) -> None:
        """Start a new day in every counter if local midnight passed since the last call
        (readers call it first, in case the midnight timer is late)."""
        day = local_day(self._clock.seconds())
        days = day - self._day
        if days <= 0:
            return
        self._day = day
        for counter in self._counters():
            counter.shift(days)

    def _counters(self) -> Iterator[DailyCounter]:
        yield self.trafficIn
        yield self.trafficOut
        for record in self.series.values():
            yield record.trafficIn
            yield record.trafficOut

    # -- timers -----------------------------------------------------------------------------
    def start(self) -> None:
        """Roll the days over at each local midnight and clear long-offline records every
        12 hours."""
        self._scheduleMidnight()
        self._cleanup = self._clock.callLater(CLEANUP_INTERVAL, self._clearOld)

    def stop(self) -> None:
        cancelCall(self._midnight)
        cancelCall(self._cleanup)
        self._midnight = self._cleanup = None

    def _scheduleMidnight(self) -> None:
        now = self._clock.seconds()
        self._midnight = self._clock.callLater(max(0.0, next_midnight(now) - now), self._atMidnight)

    def _atMidnight(self) -> None:
        self.rollover()
        self._scheduleMidnight()

    def _clearOld(self) -> None:
        count, total = self.clearOffline(OFFLINE_RETENTION)
        log.debug("clear useless proxy statistics data count {count}/{total}", count=count, total=total)
        self._cleanup = self._clock.callLater(CLEANUP_INTERVAL, self._clearOld)
