"""frps's Prometheus metrics (config-reference.md §9): ``GET /metrics`` on the dashboard.

:class:`FrpCollector` is a ``prometheus_client`` collector that reads frps's statistics
(:mod:`frptw.server.stats`) at scrape time, so the data plane pays nothing for Prometheus: it
only adds to the counters the dashboard keeps anyway.  It yields frp 0.65's families, names,
HELP texts and labels:

=========================================  =======  =============  ==============================
``frp_server_client_counts``               gauge                   logged-in clients
``frp_server_proxy_counts``                gauge    type           running proxies per type
``frp_server_proxy_counts_detailed``       gauge    name, type     1 while the proxy runs, then 0
``frp_server_connection_counts``           gauge    name, type     open user connections
``frp_server_traffic_in``                  counter  name, type     bytes from users, in total
``frp_server_traffic_out``                 counter  name, type     bytes to users, in total
``frptw_server_udp_dropped_datagrams``     counter  name, type     frptw's own: user datagrams a
                                                                   udp proxy dropped (queue full)
=========================================  =======  =============  ==============================

As in Go, a series appears once used (a proxy type once a proxy of it ran; connection and
traffic series once the proxy had a user connection, or for udp once a datagram passed) and
stays for the life of the process, also after the dashboard forgot an offline proxy.

The text is written by :func:`exposition` rather than ``prometheus_client.generate_latest``:
that one renames every counter to ``<name>_total``, and frp's counters are called
``frp_server_traffic_in``/``_out`` (what frp's users' queries and dashboards use); it also
prints families without samples, which Go leaves out.  The process's own metrics
(``process_*``, ``python_gc_*``) come from ``prometheus_client``'s collectors, in place of Go's
``go_*``/``process_*``.
"""

import math
from decimal import Decimal
from typing import Iterable, Iterator, List

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from frptw.server.stats import ServerStats

#: The content type of the classic text format, as Go's promhttp sends it.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class FrpCollector:
    """frp's ``frp_server_*`` families, read from ``stats`` and the service's clients."""

    def __init__(self, service) -> None:
        self._service = service
        self._stats: ServerStats = service.stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily("frp_server_client_counts", "The current client counts of frps",
                                value=len(self._service.clients()))
        proxies = GaugeMetricFamily("frp_server_proxy_counts", "The current proxy counts", labels=["type"])
        for kind, count in stats.proxyTypeCounts.items():
            proxies.add_metric([kind], count)
        yield proxies
        detailed = GaugeMetricFamily("frp_server_proxy_counts_detailed",
                                     "The current number of proxies grouped by type and name", labels=["type", "name"])
        connections = GaugeMetricFamily("frp_server_connection_counts", "The current connection counts",
                                        labels=["name", "type"])
        trafficIn = Metric("frp_server_traffic_in", "The total in traffic", "counter")
        trafficOut = Metric("frp_server_traffic_out", "The total out traffic", "counter")
        dropped = Metric("frptw_server_udp_dropped_datagrams",
                         "Datagrams from users a udp proxy dropped because its queue to frpc was full", "counter")
        for (name, kind), record in stats.series.items():
            detailed.add_metric([kind, name], record.registered)
            labels = {"name": name, "type": kind}
            if record.connectionsSeen:
                connections.add_metric([name, kind], record.curConns)
            if record.connectionsSeen or record.trafficIn.lifetime:
                trafficIn.add_sample("frp_server_traffic_in", labels, record.trafficIn.lifetime)
            if record.connectionsSeen or record.trafficOut.lifetime:
                trafficOut.add_sample("frp_server_traffic_out", labels, record.trafficOut.lifetime)
            if record.droppedDatagrams:
                dropped.add_sample("frptw_server_udp_dropped_datagrams", labels, record.droppedDatagrams)
        yield detailed
        yield connections
        yield trafficIn
        yield trafficOut
        yield dropped


def metrics_registry(service) -> CollectorRegistry:
    """A registry of its own (never the global one, so that several frps in one process,
    as in tests, each report their own) with frp's families and the process's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrpCollector(service))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def go_float(value: float) -> str:
    """``value`` as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it, which is how Go's
    exposition writes sample values: ``1``, ``473``, ``1.5``, ``2e+06``, ``+Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digitTuple, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    digits = "".join(map(str, digitTuple))
    point = len(digits) + exponent  # where the decimal point goes, counted from the left
    prefix = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        shown = point - 1
        return f"{prefix}{mantissa}e{'-' if shown < 0 else '+'}{abs(shown):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _escape(text: str, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def exposition(families: Iterable[Metric]) -> bytes:
    """The families in Prometheus's text format as Go's ``expfmt`` writes it: families sorted
    by name and without empty ones, samples sorted by labels, label names sorted."""
    lines: List[str] = []
    present = [family for family in families if family.samples]
    for family in sorted(present, key=lambda f: f.samples[0].name):
        # A counter is named as its samples are (prometheus_client's own counters end in _total).
        name = family.samples[0].name if family.type == "counter" else family.name
        lines.append(f"# HELP {name} {_escape(family.documentation, False)}")
        lines.append(f"# TYPE {name} {family.type}")
        for sample in sorted(family.samples, key=lambda s: (s.name, sorted(s.labels.items()))):
            labels = ",".join(f'{key}="{_escape(value, True)}"' for key, value in sorted(sample.labels.items()))
            value = go_float(sample.value)
            lines.append(f"{sample.name}{{{labels}}} {value}" if labels else f"{sample.name} {value}")
    return ("\n".join(lines) + "\n").encode("utf-8")
