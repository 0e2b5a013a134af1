"""Run every benchmark with small defaults and write docs/performance.md.

Run: python -m bench
Each bench_NAME module has ``run(...) -> dict[str, float]``; benchmarks that need a database
get a fresh temporary SQLite file. The full-size runs (1,000,000 probes, PostgreSQL) are
run by hand: see each module's docstring.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import bench

DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
SMALL = {"probes": 20_000}


def _run(name: str, folder: Path) -> dict[str, float]:
    module = importlib.import_module(f"bench.{name}")
    parameters = inspect.signature(module.run).parameters
    arguments: dict[str, object] = {k: v for k, v in SMALL.items() if k in parameters}
    if "url" in parameters:
        arguments["url"] = f"sqlite+aiosqlite:///{folder / (name + '.db')}"
    result: dict[str, float] = module.run(**arguments)
    return result


def _markdown(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "# Performance",
        "",
        f"Written by `python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"Python {platform.python_version()}, {platform.machine()}. Small default sizes; "
        "full-size figures are in the benchmark modules' docstrings and the commit log.",
    ]
    for name, figures in results.items():
        lines += ["", f"## {name}", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {key} | {value:,.2f} |" for key, value in figures.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    names = sorted(
        info.name for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith("bench_")
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            print(f"running {name}...", file=sys.stderr)
            results[name] = _run(name, Path(folder))
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
