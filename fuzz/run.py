"""Run fuzz cases, in one process or spread over several, and summarise what was seen.

Time per case is measured around the whole pipeline. Memory is measured with tracemalloc
on every SAMPLE_EVERY-th case (tracing slows Python down several times) and as the
worker's peak RSS at the end of its chunk.
"""

from __future__ import annotations

import multiprocessing
import random
import resource
import time
import traceback
import tracemalloc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.mutate import mutate
from fuzz.target import corpus, exercise, probe_index
from monitor.domain.matching import ProbeIndex

SAMPLE_EVERY = 97
CHUNK = 1000
DEFAULT_BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class Failure:
    case: int
    error: str  # exception type and message, or "slow: N s"
    where: str  # last frame of the traceback


@dataclass(frozen=True)
class ChunkResult:
    cases: int
    durations: tuple[float, ...]
    input_bytes: int
    failures: tuple[Failure, ...]
    peak_traced_bytes: int  # largest tracemalloc peak of a sampled case
    peak_traced_input: int  # size of that case's input
    max_rss_kib: int


@dataclass(frozen=True)
class FuzzReport:
    seed: str
    cases: int
    workers: int
    wall_seconds: float
    durations: tuple[float, ...] = field(repr=False)
    input_bytes: int
    failures: tuple[Failure, ...]
    peak_traced_bytes: int
    peak_traced_input: int
    max_rss_kib: int

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.durations)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def case_input(seed: str, case: int) -> bytes:
    """The mutated message of one case, the same in every process and run."""
    rng = random.Random(f"{seed}:{case}")
    messages = corpus()
    return mutate(rng.choice(messages), rng, messages)


def run_chunk(
    seed: str, start: int, count: int, budget: float = DEFAULT_BUDGET_SECONDS
) -> ChunkResult:
    index = probe_index()
    durations: list[float] = []
    failures: list[Failure] = []
    peak, peak_input, input_bytes = 0, 0, 0
    for case in range(start, start + count):
        raw = case_input(seed, case)
        input_bytes += len(raw)
        sampled = case % SAMPLE_EVERY == 0
        if sampled:
            tracemalloc.start()
        # Tracing slows a case several times: only untraced cases are held to the budget.
        elapsed, failure = _timed_case(case, raw, index, float("inf") if sampled else budget)
        if sampled:
            traced = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if traced > peak:
                peak, peak_input = traced, len(raw)
        else:
            durations.append(elapsed)
        if failure is not None:
            failures.append(failure)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ChunkResult(count, tuple(durations), input_bytes, tuple(failures), peak, peak_input, rss)


def _timed_case(
    case: int, raw: bytes, index: ProbeIndex, budget: float
) -> tuple[float, Failure | None]:
    started = time.perf_counter()
    try:
        exercise(raw, index)
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{frame.filename}:{frame.lineno} {frame.name}"
        return time.perf_counter() - started, Failure(case, f"{type(exc).__name__}: {exc}", where)
    elapsed = time.perf_counter() - started
    if elapsed > budget:
        return elapsed, Failure(case, f"slow: {elapsed:.2f} s", "")
    return elapsed, None


def _chunk_args(seed: str, cases: int, budget: float) -> list[tuple[str, int, int, float]]:
    return [(seed, start, min(CHUNK, cases - start), budget) for start in range(0, cases, CHUNK)]


def _star_chunk(args: tuple[str, int, int, float]) -> ChunkResult:
    return run_chunk(*args)


def run(
    cases: int, *, seed: str = "svarstid", workers: int = 1, budget: float = DEFAULT_BUDGET_SECONDS
) -> FuzzReport:
    """Run cases 0..cases-1, over ``workers`` processes when more than one."""
    corpus(), probe_index()  # load once before forking
    started = time.perf_counter()
    jobs = _chunk_args(seed, cases, budget)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = list(pool.imap_unordered(_star_chunk, jobs))
    else:
        results = [_star_chunk(job) for job in jobs]
    return _merge(seed, workers, time.perf_counter() - started, results)


def _merge(seed: str, workers: int, wall: float, results: Sequence[ChunkResult]) -> FuzzReport:
    biggest = max(results, key=lambda r: r.peak_traced_bytes, default=None)
    return FuzzReport(
        seed=seed,
        cases=sum(r.cases for r in results),
        workers=workers,
        wall_seconds=wall,
        durations=tuple(d for r in results for d in r.durations),
        input_bytes=sum(r.input_bytes for r in results),
        failures=tuple(sorted((f for r in results for f in r.failures), key=lambda f: f.case)),
        peak_traced_bytes=biggest.peak_traced_bytes if biggest else 0,
        peak_traced_input=biggest.peak_traced_input if biggest else 0,
        max_rss_kib=max((r.max_rss_kib for r in results), default=0),
    )


def save_failures(report: FuzzReport, folder: Path) -> list[Path]:
    """Write each failing case's input to folder/SEED-CASE.eml for replay and triage."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for failure in report.failures:
        path = folder / f"{report.seed}-{failure.case}.eml"
        path.write_bytes(case_input(report.seed, failure.case))
        written.append(path)
    return written


def summary_lines(report: FuzzReport) -> Iterable[str]:
    yield (
        f"{report.cases} cases in {report.wall_seconds:.1f} s on {report.workers} worker(s): "
        f"{report.cases_per_second:.0f} cases/s, {report.input_bytes / 1e6:.0f} MB of input"
    )
    yield (
        f"time per case: p50 {report.percentile(0.5) * 1e3:.2f} ms, "
        f"p99 {report.percentile(0.99) * 1e3:.2f} ms, max {report.percentile(1.0) * 1e3:.1f} ms"
    )
    yield (
        f"memory: largest traced peak {report.peak_traced_bytes / 1e6:.1f} MB for a "
        f"{report.peak_traced_input / 1e3:.0f} kB input; worker max RSS "
        f"{report.max_rss_kib / 1024:.0f} MB"
    )
    yield f"failures: {len(report.failures)}"
    for failure in report.failures[:20]:
        yield f"  case {failure.case}: {failure.error} {failure.where}".rstrip()
