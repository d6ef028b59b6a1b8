"""One worker process's Prometheus values, kept in plain Python objects and turned into metric families only when
Prometheus scrapes.

prometheus-client's own instruments take a lock and walk every bucket on each observation: about 2 us for a
counter and 8 us for a histogram here, four histograms and a counter on every read, which put the Prometheus
exporter over its budget of 5% of a read's CPU. These cost a bisect and an addition. They are updated from the
event loop's thread, where every request, flow and store call ends, so they need no lock. With several worker
processes prometheus-client's multiprocess values are used instead (`core/metrics/prometheus.py`).
"""

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from core.metrics.catalogue import Instrument


class CounterValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class GaugeValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


class HistogramValue:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Observations per bucket, not cumulative; the last one is `+Inf`."""
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class MemoryInstrument:
    """One catalogue instrument: its labelled values, made on first use and never removed (labels are bounded)."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._values: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        value = self._values.get(values)
        if value is None:
            kind = self.instrument.kind
            if kind == "counter":
                value = CounterValue()
            elif kind == "histogram":
                value = HistogramValue(self.instrument.buckets)
            else:
                value = GaugeValue()
            self._values[values] = value
        return value

    def family(self) -> Metric:
        instrument = self.instrument
        name, labels = instrument.name, list(instrument.labels)
        if instrument.kind == "counter":
            counter = CounterMetricFamily(name.removesuffix("_total"), instrument.help, labels=labels)
            for values, value in list(self._values.items()):
                counter.add_metric(list(values), value.value)
            return counter
        if instrument.kind == "histogram":
            histogram = HistogramMetricFamily(name, instrument.help, labels=labels)
            for values, value in list(self._values.items()):
                cumulative, buckets = 0, []
                for bound, count in zip((*value.bounds, float("inf")), list(value.counts), strict=True):
                    cumulative += count
                    buckets.append((floatToGoString(bound), cumulative))
                histogram.add_metric(list(values), buckets, value.sum)
            return histogram
        gauge = GaugeMetricFamily(name, instrument.help, labels=labels)
        for values, value in list(self._values.items()):
            gauge.add_metric(list(values), value.value)
        return gauge


class MemoryCollector:
    """The collector a registry scrapes: every instrument's family, those without values included."""

    def __init__(self, instruments: dict[str, MemoryInstrument]) -> None:
        self._instruments = instruments

    def collect(self) -> Iterator[Metric]:
        for instrument in self._instruments.values():
            yield instrument.family()
