"""GPU utilisation, memory and temperature samples through NVML, as events while training runs."""

from __future__ import annotations

import threading
from typing import Any

from engine.core.events import Emitter, GpuSample


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def read_gpus(rank: int = 0) -> list[GpuSample]:
    """One sample per visible GPU; empty when there is no NVIDIA driver (the TUI says "no GPU")."""
    nvml = _nvml()
    if nvml is None:
        return []
    samples = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            samples.append(
                GpuSample(
                    index=i,
                    rank=rank,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    utilization=float(util.gpu),
                    memory_used_mb=mem.used / 2**20,
                    memory_total_mb=mem.total / 2**20,
                    temperature_c=float(
                        nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                    ),
                )
            )
    except Exception:
        return samples
    return samples


class GpuMonitor:
    """Samples every ``interval`` seconds on a daemon thread while a stage runs."""

    def __init__(self, events: Emitter, interval: float = 2.0) -> None:
        self.events = events
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        if _nvml() is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-monitor")
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for sample in read_gpus():
                self.events.emit(sample)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
