"""Run every benchmark and write docs/performance.md with the machine described.

Run: python -m bench            quick sizes (a few minutes)
     python -m bench --full     full sizes: 1,000,000 probes for the report, 200 latency
                                samples, a 30 s idle window (seeding 1M probes takes minutes)
     python -m bench --only bench_latency --only bench_timing   (a subset; still writes the doc)

Each bench_NAME module has ``run(...) -> dict[str, float]``; the sizes passed to it are in
SIZES. bench_report runs once per database: a temporary SQLite file, and a throw-away
PostgreSQL cluster from scripts/pg-tmp when that starts. Targets (issue 7) are checked
against the figures; docs/performance.md gets the figures, the verdicts and
bench/analysis.md (why a target is missed and what would close it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
ANALYSIS = Path(__file__).resolve().parent / "analysis.md"
PG_TMP = ROOT / "scripts" / "pg-tmp"

ORDER = (
    "bench_throughput",
    "bench_classify",
    "bench_latency",
    "bench_timing",
    "bench_footprint",
    "bench_metrics",
    "bench_report",
)
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "bench_throughput": {"rounds": 3},
        "bench_latency": {"samples": 30},
        "bench_timing": {"samples": 10},
        "bench_footprint": {"idle_seconds": 10.0},
        "bench_metrics": {"samples": 20},
        "bench_report": {"probes": 20_000},
    },
    "full": {
        "bench_throughput": {"rounds": 5},
        "bench_latency": {"samples": 200},
        "bench_timing": {"samples": 40},
        "bench_footprint": {"idle_seconds": 30.0},
        "bench_metrics": {"samples": 100},
        "bench_report": {"probes": 1_000_000},
    },
}


@dataclass(frozen=True)
class Target:
    module: str
    figure: str
    limit: float
    most: bool  # True: the figure must stay at or below the limit; False: at or above
    what: str


TARGETS = (
    Target("bench_throughput", "parse_classify_match_per_s", 1000, False, "messages/s"),
    Target(
        "bench_classify",
        "quality_throughput_ratio",
        0.5,
        False,
        "share of classify throughput kept with the quality pass",
    ),
    Target("bench_latency", "pymap_over_server_p50_ms", 50, True, "ms over pymap's IDLE, p50"),
    Target("bench_latency", "pymap_over_server_p99_ms", 50, True, "ms over pymap's IDLE, p99"),
    Target("bench_latency", "dovecot_over_server_p50_ms", 50, True, "ms over Dovecot, p50"),
    Target("bench_latency", "dovecot_over_server_p99_ms", 50, True, "ms over Dovecot, p99"),
    Target("bench_timing", "live_max_arrival_error_s", 1, True, "s, replies while running"),
    Target("bench_timing", "stopped_max_arrival_error_s", 1, True, "s, replies while stopped"),
    Target("bench_timing", "stopped_max_working_error_s", 1, True, "s of working time"),
    Target("bench_footprint", "rss_mb", 120, True, "MB RSS, 1,000 targets"),
    Target("bench_footprint", "idle_cpu_percent", 1, True, "% CPU idle (no target; shown)"),
    Target("bench_metrics", "scrape_p50_ms", 100, True, "ms per /metrics, p50"),
    Target("bench_metrics", "scrape_p99_ms", 100, True, "ms per /metrics, p99"),
    Target("bench_report", "postgresql_report_seconds", 5, True, "s report on PostgreSQL"),
)


# --- the machine -----------------------------------------------------------------------


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def machine() -> dict[str, str]:
    load = os.getloadavg()
    return {
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count()),
        "RAM": f"{_memory_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "Load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


# --- running ---------------------------------------------------------------------------


def _postgres_url(folder: Path) -> str | None:
    if not PG_TMP.exists():
        return None
    folder.parent.chmod(0o755)  # the server runs as postgres and must reach its folder
    result = subprocess.run(
        [str(PG_TMP), "start", str(folder)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(f"postgresql: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return result.stdout.strip().splitlines()[-1]


def _report(sizes: dict[str, Any], folder: Path) -> dict[str, float]:
    module = importlib.import_module("bench.bench_report")
    figures: dict[str, float] = {}
    sqlite = module.run(url=f"sqlite+aiosqlite:///{folder / 'report.db'}", **sizes)
    figures |= {f"sqlite_{k}": v for k, v in sqlite.items()}
    pg_folder = folder / "pg"
    url = _postgres_url(pg_folder)
    if url is None:
        return figures | {"postgresql_available": 0.0}
    try:
        postgres = module.run(url=url, **sizes)
    finally:
        subprocess.run([str(PG_TMP), "stop", str(pg_folder)], capture_output=True, check=False)
    return (
        figures
        | {"postgresql_available": 1.0}
        | {f"postgresql_{k}": v for k, v in postgres.items()}
    )


def run_one(name: str, sizes: dict[str, Any], folder: Path) -> dict[str, float]:
    if name == "bench_report":
        return _report(sizes, folder)
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, float] = module.run(**sizes)
    return result


def run_all(mode: str, names: list[str]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        print(f"running {name}...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            try:
                results[name] = run_one(name, SIZES[mode].get(name, {}), Path(folder))
            except Exception as exc:  # one broken benchmark must not lose the others
                print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                results[name] = {"failed": 1.0}
        seconds[name] = time.perf_counter() - started
    return results, seconds


# --- the document ----------------------------------------------------------------------


def _verdicts(results: dict[str, dict[str, float]]) -> Iterator[str]:
    yield "| figure | measured | target | met |"
    yield "|---|---:|---:|:---:|"
    for target in TARGETS:
        value = results.get(target.module, {}).get(target.figure)
        sign = "≤" if target.most else "≥"
        if value is None:
            yield f"| {target.what} | not measured | {sign} {target.limit:g} | – |"
            continue
        met = value <= target.limit if target.most else value >= target.limit
        verdict = "yes" if met else "**no**"
        yield f"| {target.what} | {value:,.1f} | {sign} {target.limit:g} | {verdict} |"


def markdown(
    mode: str,
    host: dict[str, str],
    results: dict[str, dict[str, float]],
    seconds: dict[str, float],
) -> str:
    lines = [
        "# Performance",
        "",
        f"Written by `python -m bench{' --full' if mode == 'full' else ''}`.",
        "",
    ]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in host.items()]
    load = os.getloadavg()
    lines += [f"| Load average at end | {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} |", ""]
    lines += ["## Targets (issue 7)", "", *_verdicts(results), ""]
    for name, figures in results.items():
        lines += [f"## {name}", "", f"{seconds.get(name, 0):.0f} s to run.", ""]
        lines += ["| figure | value |", "|---|---:|"]
        lines += [f"| {key} | {value:,.2f} |" for key, value in figures.items()]
        lines.append("")
    if ANALYSIS.exists():
        lines.append(ANALYSIS.read_text(encoding="utf-8").rstrip())
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--full", action="store_true", help="full sizes (1M probes)")
    parser.add_argument("--only", action="append", choices=ORDER, help="run only these")
    parser.add_argument("--output", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    mode = "full" if args.full else "quick"
    host = machine()
    results, seconds = run_all(mode, list(args.only or ORDER))
    document = markdown(mode, host, results, seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document, encoding="utf-8")
    print(document)
    return 1 if any("failed" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
