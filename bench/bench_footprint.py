"""Footprint: resident memory and idle CPU of `svarstid run` with 1,000 targets.

The daemon runs as its own process (SQLite; pymap and an SMTP sink in this process), with a
history of answered probes for every target so that its gauges are all populated. After a
settling pause, CPU time (utime + stime from /proc/PID/stat) is read over an idle window;
RSS is /proc/PID/status VmRSS at the end and VmHWM (the peak since start). The first
scheduler tick may send a few probes (max_probes_per_hour) before the window begins.

Run: python -m bench.bench_footprint [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.rig import cpu_seconds, daemon_process, memory_kib

TARGETS = 1000
HISTORY_PER_TARGET = 6
SETTLE_SECONDS = 5.0


async def _measure(folder: Path, idle_seconds: float) -> dict[str, float]:
    async with daemon_process(TARGETS, HISTORY_PER_TARGET, folder) as daemon:
        await asyncio.sleep(SETTLE_SECONDS)
        before = cpu_seconds(daemon.pid)
        await asyncio.sleep(idle_seconds)
        used = cpu_seconds(daemon.pid) - before
        memory = memory_kib(daemon.pid)
    return {
        "targets": float(TARGETS),
        "history_probes": float(TARGETS * HISTORY_PER_TARGET),
        "startup_s": daemon.started_seconds,
        "idle_window_s": idle_seconds,
        "idle_cpu_percent": 100 * used / idle_seconds,
        "rss_mb": memory.get("VmRSS", 0) / 1024,
        "peak_rss_mb": memory.get("VmHWM", 0) / 1024,
    }


def run(idle_seconds: float = 30.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_measure(Path(folder), idle_seconds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    for key, value in run(parser.parse_args().idle_seconds).items():
        print(f"{key:30}{value:12.2f}")
