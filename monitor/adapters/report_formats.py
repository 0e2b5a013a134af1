"""Render a Report as a text table, CSV, JSON, Markdown or a self-contained HTML page.

JSON and CSV are for scripts: stable keys, numbers as numbers (shares as fractions 0..1, hours
as hours, changes in percentage points), empty/null where a figure does not exist. The text
formats are for people: percentages, the Wilson 95 % interval, and a ``*`` on low-confidence
figures (fewer decided probes than ``measurement.low_confidence_below``).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TextIO

from monitor.domain.reporting import GroupKind, Report, ReportRow
from monitor.domain.stats import GroupStats, Proportion


class ReportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


def render(report: Report, form: ReportFormat) -> str:
    renderers: dict[ReportFormat, Callable[[Report], str]] = {
        ReportFormat.TABLE: render_table,
        ReportFormat.CSV: render_csv,
        ReportFormat.JSON: render_json,
        ReportFormat.MARKDOWN: render_markdown,
        ReportFormat.HTML: render_html,
    }
    return renderers[form](report)


# -- records for scripts -----------------------------------------------------------------------


def _proportion(value: Proportion) -> dict[str, Any]:
    return {
        "successes": value.successes,
        "total": value.total,
        "share": value.ratio,
        "low": value.low,
        "high": value.high,
    }


def _stats_record(stats: GroupStats) -> dict[str, Any]:
    return {
        "probes": stats.probes,
        "measurable": stats.measurable,
        "answered": _proportion(stats.answered),
        "within_one_working_day": _proportion(stats.within_one),
        "within_two_working_days": _proportion(stats.within_two),
        "median_working_hours": stats.median_working_hours,
        "p90_working_hours": stats.p90_working_hours,
        "auto_ack": _proportion(stats.auto_ack_share),
        "bounces": stats.bounces,
        "low_confidence": stats.low_confidence,
    }


def row_record(row: ReportRow, level: str = "group") -> dict[str, Any]:
    """``level`` is ``group`` for a group's row, ``total`` for the row over every target."""
    return {
        "level": level,
        "key": row.key,
        "name": row.name,
        "kommunkod": row.kommunkod,
        "county": row.county,
        "targets": row.targets,
        "rank": row.rank,
        **_stats_record(row.stats),
        "change_pp": row.change_pp,
        "previous": _stats_record(row.previous),
        "monthly_within_one_share": list(row.monthly),
    }


def report_record(report: Report) -> dict[str, Any]:
    zone_now = report.as_of.isoformat()
    return {
        "period": _period_record(report.period),
        "previous_period": _period_record(report.previous_period),
        "group_by": report.grouping.label,
        "as_of": zone_now,
        "low_confidence_below": report.min_probes,
        "months": list(report.months),
        "rows": [row_record(row) for row in report.rows],
        "total": row_record(report.total, "total"),
    }


def _period_record(period: Any) -> dict[str, Any]:
    return {
        "label": period.label,
        "first_day": period.first_day.isoformat(),
        "last_day": period.last_day.isoformat(),
    }


def render_json(report: Report) -> str:
    return json.dumps(report_record(report), ensure_ascii=False, indent=2) + "\n"


CSV_COLUMNS = (
    "level",
    "key",
    "name",
    "kommunkod",
    "county",
    "targets",
    "rank",
    "probes",
    "measurable",
    "decided",
    "within_one_share",
    "within_one_low",
    "within_one_high",
    "answered_share",
    "within_two_share",
    "median_working_hours",
    "p90_working_hours",
    "auto_ack_share",
    "bounces",
    "low_confidence",
    "previous_within_one_share",
    "change_pp",
)


def _csv_values(level: str, row: ReportRow) -> list[Any]:
    stats = row.stats
    values = [
        level,
        row.key,
        row.name,
        row.kommunkod,
        row.county,
        row.targets,
        row.rank,
        stats.probes,
        stats.measurable,
        stats.within_one.total,
        stats.within_one.ratio,
        stats.within_one.low,
        stats.within_one.high,
        stats.answered.ratio,
        stats.within_two.ratio,
        stats.median_working_hours,
        stats.p90_working_hours,
        stats.auto_ack_share.ratio,
        stats.bounces,
        int(stats.low_confidence),
        row.previous.within_one.ratio,
        row.change_pp,
    ]
    return ["" if value is None else value for value in values]


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow(_csv_values("group", row))
    writer.writerow(_csv_values("total", report.total))
    return out.getvalue()


# -- text for people ---------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share_with_interval(value: Proportion) -> str:
    if value.ratio is None or value.low is None or value.high is None:
        return "-"
    return f"{100 * value.ratio:.1f} [{100 * value.low:.1f}–{100 * value.high:.1f}]"


def _change(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _headers(report: Report) -> list[str]:
    per_target = report.grouping.kind is GroupKind.TARGET
    first = ["RANK", "NAME", "KOMMUNKOD", "COUNTY"] if per_target else ["RANK", "GROUP", "TARGETS"]
    return [
        *first,
        "N",
        "≤1 DAY % [95% CI]",
        "MEDIAN H",
        "PROBES",
        "MEASURABLE",
        "ANSWERED %",
        "≤2 DAYS %",
        "P90 H",
        "AUTO-ACK %",
        "BOUNCES",
        "CHANGE PP",
    ]


def _cells(report: Report, row: ReportRow, rank_text: str | None = None) -> list[str]:
    stats = row.stats
    mark = "*" if stats.low_confidence else ""
    if report.grouping.kind is GroupKind.TARGET and row is not report.total:
        first = [row.name, row.kommunkod or "-", row.county or "-"]
    elif report.grouping.kind is GroupKind.TARGET:
        first = [row.name, "", row.county or ""]  # the total: no kommunkod, a shared county
    else:
        first = [row.name, str(row.targets)]
    rank = rank_text if rank_text is not None else (str(row.rank) if row.rank else "-")
    return [
        rank,
        *first,
        f"{stats.within_one.total}{mark}",
        _share_with_interval(stats.within_one),
        _hours(stats.median_working_hours),
        str(stats.probes),
        str(stats.measurable),
        _percent(stats.answered.ratio),
        _percent(stats.within_two.ratio),
        _hours(stats.p90_working_hours),
        _percent(stats.auto_ack_share.ratio),
        str(stats.bounces),
        _change(row.change_pp),
    ]


def _body(report: Report) -> list[list[str]]:
    rows = [_cells(report, row) for row in report.rows]
    rows.append(_cells(report, report.total, rank_text=""))
    return rows


def _title(report: Report) -> str:
    return (
        f"svarstid report {report.period.label} by {report.grouping.label}, "
        f"as of {report.as_of:%Y-%m-%d %H:%M %Z}; change against {report.previous_period.label}"
    )


def _footnote(report: Report) -> str:
    return (
        f"N: probes decided for the one-working-day share (answered, final, or already past "
        f"9 office hours). * fewer than {report.min_probes}: low confidence. Hours are "
        f"working hours (Kaplan–Meier, unanswered probes censored)."
    )


def render_table(report: Report) -> str:
    rows = [_headers(report), *_body(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return (
        "\n".join([_title(report), "", *(line.rstrip() for line in lines), "", _footnote(report)])
        + "\n"
    )


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def render_markdown(report: Report) -> str:
    header = _headers(report)
    lines = [
        f"# {_markdown_cell(_title(report))}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in _body(report):
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
    lines += ["", _footnote(report)]
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------------

_SORT_SCRIPT = """
document.querySelectorAll("table.report th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = th.getAttribute("data-order") !== "asc";
    th.closest("tr").querySelectorAll("th").forEach(function (o) {
      o.removeAttribute("data-order");
    });
    th.setAttribute("data-order", ascending ? "asc" : "desc");
    function key(row) {
      var cell = row.cells[column];
      var raw = cell.getAttribute("data-value");
      if (raw === null) { return cell.textContent; }
      return raw === "" ? null : parseFloat(raw);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = (typeof x === "number" && typeof y === "number")
        ? x - y : String(x).localeCompare(String(y), "sv");
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table.report { border-collapse: collapse; font-size: 0.9em; }
table.report th, table.report td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; }
table.report th { cursor: pointer; background: #f4f4f4; text-align: left; }
table.report td.number { text-align: right; font-variant-numeric: tabular-nums; }
table.report tfoot td { font-weight: bold; }
th[data-order="asc"]::after { content: " ▲"; }
th[data-order="desc"]::after { content: " ▼"; }
.low { color: #a33; }
svg text { font-size: 11px; fill: #444; }
"""

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _numbers(row: ReportRow) -> list[float | int | None]:
    """The numbers behind the numeric columns of ``_cells``, in order, for sorting."""
    stats = row.stats
    return [
        stats.within_one.total,
        stats.within_one.ratio,
        stats.median_working_hours,
        stats.probes,
        stats.measurable,
        stats.answered.ratio,
        stats.within_two.ratio,
        stats.p90_working_hours,
        stats.auto_ack_share.ratio,
        stats.bounces,
        row.change_pp,
    ]


def _number_cell(text: str, value: float | int | None, css: str = "number") -> str:
    shown = "" if value is None else repr(float(value))
    return f'<td class="{css}" data-value="{shown}">{html.escape(text)}</td>'


def _html_row(report: Report, row: ReportRow, rank_text: str | None = None) -> str:
    cells = _cells(report, row, rank_text)
    numbers = _numbers(row)
    names = cells[1 : len(cells) - len(numbers)]
    low = "number low" if row.stats.low_confidence else "number"
    parts = [
        _number_cell(cells[0], row.rank),
        *(f"<td>{html.escape(name)}</td>" for name in names),
        *(
            _number_cell(text, value, low if index == 0 else "number")
            for index, (text, value) in enumerate(
                zip(cells[len(cells) - len(numbers) :], numbers, strict=True)
            )
        ),
    ]
    return "<tr>" + "".join(parts) + "</tr>"


def _chart(report: Report, width: int = 720, height: int = 260) -> str:
    """Monthly share within one working day per group, as lines; the total dashed."""
    months = report.months
    left, right, top, bottom = 40, 180, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(1, len(months) - 1)

    def point(index: int, share: float) -> str:
        return f"{left + index * step:.1f},{top + (1 - share) * plot_h:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Monthly share answered within one working day">'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + (1 - tick) * plot_h
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(tick * 100)}%</text>'
        )
    for index, label in enumerate(months):
        parts.append(
            f'<text x="{left + index * step:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{html.escape(label[-5:])}</text>"
        )
    series = [*report.rows, report.total]
    for number, row in enumerate(series):
        colour = "#000" if row is report.total else _PALETTE[number % len(_PALETTE)]
        dash = ' stroke-dasharray="5,3"' if row is report.total else ""
        for run in _runs(row.monthly):
            points = " ".join(point(index, share) for index, share in run)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                f'points="{points}"><title>{html.escape(row.name)}</title></polyline>'
            )
        if number < 20 or row is report.total:
            y = top + 12 * min(number, 20)
            parts.append(
                f'<text x="{left + plot_w + 10}" y="{y + 4}" fill="{colour}">'
                f"{html.escape(row.name[:24])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _runs(monthly: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive months with a share; a month without one breaks the line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for index, share in enumerate(monthly):
        if share is None:
            runs.append([])
        else:
            runs[-1].append((index, share))
    return [run for run in runs if run]


def render_html(report: Report) -> str:
    title = html.escape(_title(report))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in _headers(report))
    body = "\n".join(_html_row(report, row) for row in report.rows)
    total = _html_row(report, report.total, rank_text="")
    return f"""<!DOCTYPE html>
<html lang="sv">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<h2>Share answered within one working day, per month</h2>
{_chart(report)}
<h2>Figures</h2>
<table class="report">
<thead><tr>{header}</tr></thead>
<tbody>
{body}
</tbody>
<tfoot>{total}</tfoot>
</table>
<p>{html.escape(_footnote(report))}</p>
<script>{_SORT_SCRIPT}</script>
</body>
</html>
"""


class ProgressLine:
    """Progress on one rewritten stderr line, shown only when asked or on a terminal."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._shown = False

    def __call__(self, text: str) -> None:
        if self._enabled:
            self._stream.write(f"\r\033[K{text}")
            self._stream.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
