"""/metrics scrape time of `svarstid run` with 1,000 targets and a populated history.

The same daemon process as bench_footprint; /metrics is fetched ``samples`` times in a row
over HTTP (aiohttp client on 127.0.0.1), timing each request to its last byte.

Run: python -m bench.bench_metrics [--samples 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.bench_footprint import HISTORY_PER_TARGET, TARGETS
from bench.rig import daemon_process, percentile


async def _scrapes(url: str, samples: int) -> tuple[list[float], str]:
    timings, body = [], ""
    async with aiohttp.ClientSession() as session:
        for _ in range(samples + 1):
            started = time.perf_counter()
            async with session.get(url) as response:
                body = await response.text()
            timings.append((time.perf_counter() - started) * 1e3)
    return timings, body


async def _measure(folder: Path, samples: int) -> dict[str, float]:
    async with daemon_process(TARGETS, HISTORY_PER_TARGET, folder) as daemon:
        await asyncio.sleep(2)
        timings, body = await _scrapes(daemon.metrics_url, samples)
    # The first scrape renders the registry; later ones reuse it until a sample changes.
    render, timings = timings[0], timings[1:]
    series = [line for line in body.splitlines() if line and not line.startswith("#")]
    return {
        "targets": float(TARGETS),
        "series": float(len(series)),
        "body_kb": len(body.encode()) / 1024,
        "render_after_change_ms": render,
        "scrape_p50_ms": percentile(timings, 0.5),
        "scrape_p99_ms": percentile(timings, 0.99),
        "scrape_max_ms": max(timings),
    }


def run(samples: int = 50) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(_measure(Path(folder), samples))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    for key, value in run(parser.parse_args().samples).items():
        print(f"{key:30}{value:12.2f}")
