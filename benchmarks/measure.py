"""Time and peak memory of benchmark steps, sampled from the process's resident set size."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

GIB = 1024**3


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    rows: int | None = None

    def line(self) -> str:
        rate = (
            f"{self.rows / self.seconds:>12,.0f} rows/s" if self.rows and self.seconds else " " * 19
        )
        return (
            f"{self.name:<28} {self.seconds:8.1f} s {rate}   peak RSS {self.rss_peak / GIB:5.2f} GiB"
            f" (+{(self.rss_peak - self.rss_before) / GIB:4.2f} during the step)"
        )


@dataclass
class Recorder:
    """Samples RSS every few milliseconds while a step runs."""

    steps: list[Step] = field(default_factory=list)
    interval: float = 0.02
    children: bool = False  # add the child processes (Spark's JVM and its Python workers)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        gc.collect()
        process = psutil.Process()

        def rss() -> int:
            total = process.memory_info().rss
            if self.children:
                for child in process.children(recursive=True):
                    # a child may end between the listing and the reading
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
            return total

        record = Step(name, rss_before=rss())
        record.rss_peak = record.rss_before
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                record.rss_peak = max(record.rss_peak, rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            yield record
        finally:
            record.seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            record.rss_peak = max(record.rss_peak, rss())
            self.steps.append(record)
            print(record.line(), flush=True)
