"""What the machine was doing: load average and the processes' CPU and memory.

The machine is shared, so every figure is stored next to the load average
at its start and end. A :class:`Sampler` follows named groups of processes
(our API and workers, the PostgreSQL backends of the bench's database, the
sink, APScheduler) twice a second and reports each group's CPU use, as a share
of one core, and its largest resident memory.
"""

import os
import threading
from collections.abc import Callable

import psutil

PidSource = Callable[[], list[int]]


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


class Sampler:
    """Samples groups of processes in a background thread until stopped."""

    def __init__(self, groups: dict[str, PidSource], every: float = 0.5) -> None:
        self.groups = groups
        self.every = every
        self._processes: dict[int, psutil.Process] = {}
        self._cpu: dict[str, list[float]] = {name: [] for name in groups}
        self._rss: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._machine: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Sampler":
        psutil.cpu_percent()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per group: mean and peak CPU (1.0 = one core) and peak RSS in MiB."""
        result = {
            name: {
                "cpu_mean": _mean(samples),
                "cpu_peak": round(max(samples, default=0.0), 2),
                "rss_peak_mib": round(self._rss[name] / 2**20, 1),
            }
            for name, samples in self._cpu.items()
        }
        result["machine"] = {
            "cpu_mean": _mean(self._machine),
            "cpu_peak": round(max(self._machine, default=0.0), 2),
            "cores": psutil.cpu_count(),
        }
        return result

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            for name, pids in self.groups.items():
                cpu, rss = self._sample(pids())
                self._cpu[name].append(cpu)
                self._rss[name] = max(self._rss[name], rss)
            self._machine.append(psutil.cpu_percent() / 100 * psutil.cpu_count())

    def _sample(self, pids: list[int]) -> tuple[float, float]:
        """CPU since the last sample (in cores) and resident memory of ``pids``."""
        cpu = rss = 0.0
        for pid in pids:
            try:
                process = self._processes.get(pid)
                if process is None:
                    # A process seen for the first time starts psutil's
                    # interval; it counts from the next sample on.
                    process = self._processes[pid] = psutil.Process(pid)
                    process.cpu_percent()
                else:
                    cpu += process.cpu_percent() / 100
                rss += process.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss


def _mean(samples: list[float]) -> float:
    return round(sum(samples) / len(samples), 2) if samples else 0.0
