"""The status page: server-rendered HTML and its JSON twins, on the daemon's HTTP server.

Routes: ``/`` (targets table, weekly chart, monitor health), ``/targets/{id}``,
``/probes/{token}``, and ``/api/targets``, ``/api/targets/{id}``, ``/api/probes/{token}``.

Everything that comes from mail or configuration goes through ``esc`` (html.escape with
quotes) before it reaches the page: subjects, addresses and bodies are attacker-controlled.
A Content-Security-Policy allows no script but the page's own sorting snippet (by hash), as a
second line of defence. The table sorts on the server (links in the headers), and the snippet
only re-sorts in place, so the page works without JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitor.domain.model import OutcomeState, ProbeOutcome
from monitor.domain.stats import GroupStats, Proportion
from monitor.service.dashboard import (
    Dashboard,
    MessageDetail,
    MonitorHealth,
    Overview,
    ProbeDetail,
    ProbeLine,
    TargetDetail,
    TargetRow,
    TimelineEntry,
    WeekShare,
)

STOCKHOLM = ZoneInfo("Europe/Stockholm")

OUTCOME_LABELS = {
    OutcomeState.ANSWERED: "answered",
    OutcomeState.UNANSWERED_SO_FAR: "waiting",
    OutcomeState.UNANSWERED_FINAL: "unanswered",
    OutcomeState.NOT_MEASURABLE: "not measurable",
}
EVENT_LABELS = {
    "planned": "Planned",
    "sending": "Handed to SMTP",
    "sent": "Sent (accepted by SMTP)",
    "failed": "Send failed",
    "uncertain": "Send uncertain",
    "human": "Human answer",
    "auto_reply": "Automatic reply",
    "ticket_receipt": "Ticket receipt",
    "bounce": "Bounce",
    "delay": "Delivery delayed",
    "read_receipt": "Read receipt",
    "complaint": "Complaint",
    "bulk": "Bulk mail",
}

SORT_SCRIPT = (
    # data-js tells a test (and CSS) that the script ran, i.e. the CSP hash matches.
    "document.documentElement.setAttribute('data-js','sortable');"
    "document.querySelectorAll('th[data-col]').forEach(function(th){"
    "th.addEventListener('click',function(ev){ev.preventDefault();"
    "var table=th.closest('table'),body=table.tBodies[0],col=+th.dataset.col,"
    "asc=th.getAttribute('aria-sort')!=='ascending';"
    "table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});"
    "th.setAttribute('aria-sort',asc?'ascending':'descending');"
    "Array.prototype.slice.call(body.rows).sort(function(a,b){"
    "var x=a.cells[col].dataset.v,y=b.cells[col].dataset.v,"
    "d=(th.dataset.type==='num')?parseFloat(x)-parseFloat(y):x.localeCompare(y,'sv');"
    "return asc?d:-d}).forEach(function(r){body.appendChild(r)})})});"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
background:#f5f7f9}
header{background:#17324d;color:#fff;padding:.8rem 1rem}
header a{color:#fff;text-decoration:none;font-weight:600}
header small{opacity:.75;margin-left:.6rem}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 .8rem}
h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
a{color:#0b5cad}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1rem}
.card{background:#fff;border:1px solid #dde3e9;border-radius:8px;padding:.55rem .8rem;
min-width:9rem;flex:1 1 9rem}
.card b{display:block;font-size:1.3rem}
.card span{color:#5b6b7b;font-size:.82rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde3e9;border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{padding:.45rem .6rem;text-align:left;border-bottom:1px solid #edf0f3;white-space:nowrap}
th{background:#eef2f6;font-weight:600;position:sticky;top:0}
th a{color:inherit;text-decoration:none}
th[aria-sort=ascending] a::after{content:" ▲"}
th[aria-sort=descending] a::after{content:" ▼"}
td.num,th.num{text-align:right}
tr:hover td{background:#f8fafc}
.pill{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;
background:#e8edf2}
.answered{background:#d9f2e3;color:#17603a}
.waiting{background:#fff3cd;color:#7a5b00}
.unanswered{background:#fbe0e0;color:#8a1f1f}
.failing{background:#8a1f1f;color:#fff}
.muted{color:#6b7b8b}
.low{color:#8c99a6}
.health{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;font-size:.9rem}
.ok{color:#17603a}.bad{color:#a11d1d}
.chart{background:#fff;border:1px solid #dde3e9;border-radius:8px;padding:.5rem}
.chart svg{width:100%;height:auto;display:block}
ol.timeline{list-style:none;padding:0;margin:0;border-left:3px solid #c9d4df}
ol.timeline li{margin:0 0 .6rem;padding-left:.8rem;position:relative}
ol.timeline li::before{content:"";position:absolute;left:-.5rem;top:.45rem;width:.7rem;
height:.7rem;border-radius:50%;background:#17324d}
ol.timeline li.human::before{background:#1c8a4c}
ol.timeline li.bounce::before{background:#b42318}
.msg{background:#fff;border:1px solid #dde3e9;border-radius:8px;padding:.7rem;margin:.7rem 0}
.msg table td{white-space:normal;word-break:break-word}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f5f7;padding:.6rem;border-radius:6px;
font-size:.88rem}
footer{color:#6b7b8b;font-size:.8rem;padding:1rem;text-align:center}
@media (max-width:640px){main{padding:.6rem}.hide-s{display:none}th,td{padding:.35rem .4rem}
th{white-space:normal;vertical-align:bottom}table{font-size:.85rem}.card{padding:.4rem .6rem;
min-width:7rem}.card b{font-size:1.1rem}.card span{font-size:.75rem}h1{font-size:1.15rem}}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def local_time(at: datetime | None, zone: ZoneInfo = STOCKHOLM) -> str:
    if at is None:
        return "–"
    try:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except OverflowError:  # a mail's date at the end of time has no local time: show UTC
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def share_text(share: Proportion) -> str:
    return "–" if share.ratio is None else f"{round(share.ratio * 100)} %"


def hours_text(hours: float | None) -> str:
    return "–" if hours is None else f"{hours:.1f} h"


def outcome_pill(state: OutcomeState | None) -> str:
    if state is None:
        return '<span class="pill">–</span>'
    label = OUTCOME_LABELS[state]
    css = label if state is not OutcomeState.NOT_MEASURABLE else ""
    return f'<span class="pill {css}">{esc(label)}</span>'


def page(title: str, body: str, *, now: datetime | None = None) -> str:
    stamp = f"<small>as of {esc(local_time(now))}</small>" if now else ""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · svarstid</title><style>{STYLE}</style></head><body>"
        f'<header><a href="/">svarstid</a>{stamp}</header><main>{body}</main>'
        "<footer>Working time: Mon–Fri 08:00–17:00 Europe/Stockholm, Swedish holidays. "
        'One working day = 9 office hours (KKiK). <a href="/metrics">/metrics</a> · '
        '<a href="/api/targets">JSON</a></footer>'
        f"<script>{SORT_SCRIPT}</script></body></html>"
    )


# -- overview ------------------------------------------------------------------------------

SortValue = float | str
Column = tuple[str, str, str, Callable[[TargetRow], tuple[str, SortValue]]]
# (key, title, type, row -> (cell html, sort value)); type "num" or "text"


def _name_cell(row: TargetRow) -> tuple[str, SortValue]:
    link = f'<a href="/targets/{esc(row.target.id)}">{esc(row.target.name)}</a>'
    return link, row.target.name


def _share_cell(row: TargetRow) -> tuple[str, SortValue]:
    share = row.stats.within_one
    css = ' class="low"' if row.stats.low_confidence else ""
    counts = (
        f' <small class="muted hide-s">{share.successes}/{share.total}</small>'
        if share.total
        else ""
    )
    value = -1.0 if share.ratio is None else share.ratio
    return f"<span{css}>{share_text(share)}</span>{counts}", value


def _median_cell(row: TargetRow) -> tuple[str, SortValue]:
    median = row.stats.median_working_hours
    return hours_text(median), 1e9 if median is None else median


def _last_cell(row: TargetRow) -> tuple[str, SortValue]:
    label = OUTCOME_LABELS[row.last_outcome] if row.last_outcome else ""
    return outcome_pill(row.last_outcome), label


def _failing_cell(row: TargetRow) -> tuple[str, SortValue]:
    if not row.address_failing:
        return '<span class="muted">ok</span>', 0
    return f'<span class="pill failing" title="{esc(row.failing_reason)}">failing</span>', 1


COLUMNS: tuple[Column, ...] = (
    ("name", "Municipality", "text", _name_cell),
    ("county", "County", "text", lambda r: (esc(r.target.county or "–"), r.target.county or "")),
    ("probes", "Probes", "num", lambda r: (str(r.stats.probes), r.stats.probes)),
    ("share", "Within 1 working day", "num", _share_cell),
    ("median", "Median working h", "num", _median_cell),
    ("last", "Last outcome", "text", _last_cell),
    ("failing", "Address", "num", _failing_cell),
)
HIDDEN_ON_PHONES = frozenset({"county", "last"})
SORT_KEYS = {column[0]: column for column in COLUMNS}


def sorted_rows(rows: Iterable[TargetRow], key: str, descending: bool) -> list[TargetRow]:
    column = SORT_KEYS.get(key, COLUMNS[0])
    numeric = column[2] == "num"

    def sort_value(row: TargetRow) -> Any:
        value = column[3](row)[1]
        return (float(value) if numeric else str(value).casefold(), row.target.name.casefold())

    return sorted(rows, key=sort_value, reverse=descending)


def render_overview(overview: Overview, sort: str = "name", descending: bool = False) -> str:
    rows = sorted_rows(overview.rows, sort, descending)
    body = (
        "<h1>Response times, last 30 days</h1>"
        + _summary_cards(overview)
        + _targets_table(rows, sort, descending)
        + "<h2>Share answered within one working day, per week (all targets)</h2>"
        + f'<div class="chart">{weekly_chart(overview.weeks)}</div>'
        + "<h2>Monitor health</h2>"
        + _health(overview.health, overview.now)
    )
    return page("Status", body, now=overview.now)


def _summary_cards(overview: Overview) -> str:
    stats = overview.all_targets
    failing = sum(row.address_failing for row in overview.rows)
    cards = (
        (share_text(stats.within_one), "answered within one working day"),
        (hours_text(stats.median_working_hours), "median working hours to answer"),
        (str(stats.probes), "probes sent in 30 days"),
        (str(len(overview.rows)), "municipalities measured"),
        (str(failing), "addresses failing"),
    )
    inner = "".join(
        f'<div class="card"><b>{esc(v)}</b><span>{esc(t)}</span></div>' for v, t in cards
    )
    return f'<div class="cards">{inner}</div>'


def _targets_table(rows: Sequence[TargetRow], sort: str, descending: bool) -> str:
    head = "".join(_header(i, c, sort, descending) for i, c in enumerate(COLUMNS))
    body = "".join(_row_html(row) for row in rows)
    return (
        f'<div class="scroll"><table id="targets"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _header(index: int, column: Column, sort: str, descending: bool) -> str:
    key, title, kind, _ = column
    active = key == sort
    next_dir = "asc" if active and descending else "desc" if active else "asc"
    aria = ""
    if active:
        aria = f' aria-sort="{"descending" if descending else "ascending"}"'
    css = _cell_class(key, kind)
    return (
        f'<th data-col="{index}" data-type="{kind}"{css}{aria}>'
        f'<a href="/?sort={key}&amp;dir={next_dir}">{esc(title)}</a></th>'
    )


def _cell_class(key: str, kind: str) -> str:
    classes = ["num"] if kind == "num" else []
    classes += ["hide-s"] if key in HIDDEN_ON_PHONES else []
    return f' class="{" ".join(classes)}"' if classes else ""


def _row_html(row: TargetRow) -> str:
    cells = []
    for key, _title, kind, cell in COLUMNS:
        content, value = cell(row)
        css = _cell_class(key, kind)
        cells.append(f'<td{css} data-v="{esc(value)}">{content}</td>')
    return f'<tr data-target="{esc(row.target.id)}">{"".join(cells)}</tr>'


def weekly_chart(weeks: Sequence[WeekShare], width: int = 720, height: int = 220) -> str:
    """Bars of the weekly share (0–100 %), n above each bar; server-rendered SVG."""
    left, bottom, top = 48, 28, 18
    plot_h = height - bottom - top
    slot = (width - left - 8) / max(len(weeks), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Weekly share answered within one working day">'
    ]
    for level in (0, 50, 100):
        y = top + plot_h * (1 - level / 100)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde3e9"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#6b7b8b">{level} %</text>'
        )
    for index, week in enumerate(weeks):
        parts.append(_bar(week, left + index * slot, slot, top, plot_h))
    parts.append("</svg>")
    return "".join(parts)


def _bar(week: WeekShare, x: float, slot: float, top: int, plot_h: float) -> str:
    centre = x + slot / 2
    label = f"v{week.week_start.isocalendar().week}"
    share = week.within_one
    text = (
        f'<text x="{centre:.1f}" y="{top + plot_h + 16:.1f}" font-size="11" '
        f'text-anchor="middle" fill="#3b4b5b">{esc(label)}</text>'
    )
    if share.ratio is None:
        return text
    bar_h = max(plot_h * share.ratio, 1.5)
    y = top + plot_h - bar_h
    title = f"week of {week.week_start}: {share.successes}/{share.total}"
    return text + (
        f'<rect x="{x + slot * 0.18:.1f}" y="{y:.1f}" width="{slot * 0.64:.1f}" '
        f'height="{bar_h:.1f}" rx="3" fill="#2d7d5a"><title>{esc(title)}</title></rect>'
        f'<text x="{centre:.1f}" y="{y - 4:.1f}" font-size="10" text-anchor="middle" '
        f'fill="#3b4b5b">{round(share.ratio * 100)}%</text>'
    )


def _health(health: MonitorHealth, now: datetime) -> str:
    imap = '<b class="ok">connected</b>' if health.imap_connected else '<b class="bad">down</b>'
    items = (
        ("IMAP", imap),
        ("SMTP last success", _ago(health.smtp_last_success, now)),
        ("Last message processed", _ago(health.last_message_processed, now)),
        ("Last probe sent", _ago(health.last_probe_sent, now)),
        ("Scheduler last run", _ago(health.scheduler_last_run, now)),
    )
    inner = "".join(f"<div>{esc(name)}: {value}</div>" for name, value in items)
    return f'<div class="health" id="health">{inner}</div>'


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return '<span class="muted">never</span>'
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 120:
        ago = f"{seconds:.0f} s ago"
    elif seconds < 7200:
        ago = f"{seconds / 60:.0f} min ago"
    else:
        ago = f"{seconds / 3600:.0f} h ago"
    return f'<span title="{esc(local_time(at))}">{esc(ago)}</span>'


# -- target page ---------------------------------------------------------------------------


def render_target(detail: TargetDetail, now: datetime) -> str:
    row, target = detail.row, detail.row.target
    failing = (
        f'<p><span class="pill failing">address failing</span> {esc(row.failing_reason)}</p>'
        if row.address_failing
        else ""
    )
    facts = (
        f"<p class=muted>{esc(target.county or '')} · kommunkod {esc(target.kommunkod or '–')}"
        f" · {esc(target.address)}"
        + (f" · {esc(', '.join(target.tags))}" if target.tags else "")
        + "</p>"
    )
    body = (
        f"<h1>{esc(target.name)}</h1>{facts}{failing}"
        + _stat_cards(row.stats, detail.stats_90_days)
        + "<h2>Probes, last 90 days</h2>"
        + _probe_table(detail.probes)
    )
    return page(target.name, body, now=now)


def _stat_cards(last_30: GroupStats, last_90: GroupStats) -> str:
    cards = (
        (share_text(last_30.within_one), "within 1 working day, 30 d"),
        (hours_text(last_30.median_working_hours), "median working hours, 30 d"),
        (share_text(last_90.within_one), "within 1 working day, 90 d"),
        (share_text(last_90.auto_ack_share), "got an automatic acknowledgement, 90 d"),
        (str(last_90.probes), "probes, 90 d"),
    )
    inner = "".join(
        f'<div class="card"><b>{esc(v)}</b><span>{esc(t)}</span></div>' for v, t in cards
    )
    return f'<div class="cards">{inner}</div>'


def _probe_table(lines: Sequence[ProbeLine]) -> str:
    if not lines:
        return "<p class=muted>No probes yet.</p>"
    head = (
        "<tr><th>Sent</th><th>Question</th><th>Outcome</th><th class=num>Working h</th>"
        "<th class=hide-s>Acknowledged</th><th class=hide-s>Ticket</th></tr>"
    )
    rows = "".join(_probe_row(line) for line in lines)
    return (
        f'<div class="scroll"><table id="probes"><thead>{head}</thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _probe_row(line: ProbeLine) -> str:
    probe, outcome = line.probe, line.outcome
    sent = local_time(probe.sent_at) if probe.sent_at else esc(probe.state.value)
    working = hours_text(_working_hours(outcome))
    ack = local_time(outcome.first_ack_at) if outcome and outcome.first_ack_at else "–"
    ticket = esc(outcome.ack_ticket_number) if outcome and outcome.ack_ticket_number else "–"
    state = outcome.state if outcome else None
    return (
        f'<tr><td><a href="/probes/{esc(probe.token)}">{esc(sent)}</a></td>'
        f"<td>{esc(_shorten(probe.subject, 60))}</td><td>{outcome_pill(state)}</td>"
        f"<td class=num>{esc(working)}</td><td class=hide-s>{esc(ack)}</td>"
        f"<td class=hide-s>{ticket}</td></tr>"
    )


def _working_hours(outcome: ProbeOutcome | None) -> float | None:
    if outcome is None or outcome.working_seconds is None:
        return None
    return outcome.working_seconds / 3600


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- probe page ----------------------------------------------------------------------------


def render_probe(detail: ProbeDetail, now: datetime) -> str:
    probe, target, outcome = detail.probe, detail.target, detail.outcome
    target_link = (
        f'<a href="/targets/{esc(target.id)}">{esc(target.name)}</a>'
        if target
        else esc(probe.target_id)
    )
    summary = _outcome_summary(outcome)
    body = (
        f"<h1>{esc(probe.subject)}</h1>"
        f"<p>To {target_link} &lt;{esc(probe.target_address)}&gt; · probe "
        f"<code>{esc(probe.token)}</code> · {outcome_pill(outcome.state if outcome else None)}"
        f"</p>{summary}<h2>Timeline</h2>{_timeline(detail.timeline)}"
        f"<h2>Messages</h2>{_messages(detail.messages)}"
    )
    return page(probe.subject, body, now=now)


def _outcome_summary(outcome: ProbeOutcome | None) -> str:
    if outcome is None:
        return ""
    facts = []
    if outcome.working_seconds is not None:
        within = "yes" if outcome.within_one_working_day else "no"
        facts.append(f"answered after {outcome.working_seconds / 3600:.1f} working hours")
        facts.append(f"within one working day: {within}")
    if outcome.ack_ticket_number:
        facts.append(f"ticket {outcome.ack_ticket_number}")
    if outcome.bounced:
        facts.append("bounced" + (" (permanent)" if outcome.bounce_permanent else ""))
    return f"<p>{esc(' · '.join(facts))}</p>" if facts else ""


def _timeline(entries: Sequence[TimelineEntry]) -> str:
    items = []
    for entry in entries:
        label = EVENT_LABELS.get(entry.event, entry.event)
        detail = f" — {esc(entry.detail)}" if entry.detail else ""
        link = (
            f' · <a href="#m-{esc(entry.message_key[:12])}">message</a>'
            if entry.message_key
            else ""
        )
        items.append(
            f'<li class="{esc(entry.event)}"><b>{esc(local_time(entry.at))}</b> '
            f"{esc(label)}{detail}{link}</li>"
        )
    return f'<ol class="timeline" id="timeline">{"".join(items)}</ol>'


def _messages(messages: Sequence[MessageDetail]) -> str:
    if not messages:
        return "<p class=muted>Nothing received for this probe yet.</p>"
    return "".join(_message(m) for m in messages)


def _message(detail: MessageDetail) -> str:
    m = detail.message
    facts = (
        f"<p><b>{esc(EVENT_LABELS.get(m.kind.value, m.kind.value))}</b> · received "
        f"{esc(local_time(m.received_at))} · from {esc(m.from_address or '–')} · matched by "
        f"{esc(m.match_method.value)}</p><p>Subject: {esc(m.subject)}</p>"
    )
    if not detail.body_kept:
        kept = "<p class=muted>Headers and body were deleted after the retention period.</p>"
    else:
        rows = "".join(
            f"<tr><td>{esc(name)}</td><td>{esc(value)}</td></tr>" for name, value in detail.headers
        )
        text = (
            f"<h3>New text</h3><pre>{esc(detail.new_text)}</pre>"
            if detail.new_text is not None
            else ""
        )
        kept = f"<details><summary>Headers</summary><table>{rows}</table></details>{text}"
    return f'<div class="msg" id="m-{esc(m.message_key[:12])}">{facts}{kept}</div>'


# -- JSON ----------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _proportion(share: Proportion) -> dict[str, Any]:
    return {
        "successes": share.successes,
        "total": share.total,
        "ratio": share.ratio,
        "low": share.low,
        "high": share.high,
    }


def stats_json(stats: GroupStats) -> dict[str, Any]:
    return {
        "probes": stats.probes,
        "measurable": stats.measurable,
        "within_one_working_day": _proportion(stats.within_one),
        "within_two_working_days": _proportion(stats.within_two),
        "answered": _proportion(stats.answered),
        "median_working_hours": stats.median_working_hours,
        "p90_working_hours": stats.p90_working_hours,
        "auto_ack_share": _proportion(stats.auto_ack_share),
        "bounces": stats.bounces,
        "low_confidence": stats.low_confidence,
    }


def row_json(row: TargetRow) -> dict[str, Any]:
    target = row.target
    return {
        "id": target.id,
        "name": target.name,
        "county": target.county,
        "kommunkod": target.kommunkod,
        "address": target.address,
        "tags": list(target.tags),
        "last_30_days": stats_json(row.stats),
        "last_outcome": row.last_outcome.value if row.last_outcome else None,
        "last_sent_at": _iso(row.last_sent_at),
        "address_failing": row.address_failing,
        "address_failing_reason": row.failing_reason,
    }


def overview_json(overview: Overview) -> dict[str, Any]:
    health = overview.health
    return {
        "now": _iso(overview.now),
        "all_targets_last_30_days": stats_json(overview.all_targets),
        "targets": [row_json(row) for row in overview.rows],
        "weeks": [
            {"week_start": w.week_start.isoformat(), **_proportion(w.within_one)}
            for w in overview.weeks
        ],
        "health": {
            "imap_connected": health.imap_connected,
            "smtp_last_success": _iso(health.smtp_last_success),
            "last_message_processed": _iso(health.last_message_processed),
            "last_probe_sent": _iso(health.last_probe_sent),
            "scheduler_last_run": _iso(health.scheduler_last_run),
        },
    }


def outcome_json(outcome: ProbeOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {
        "state": outcome.state.value,
        "clock_start": _iso(outcome.clock_start),
        "first_ack_at": _iso(outcome.first_ack_at),
        "ack_ticket_number": outcome.ack_ticket_number,
        "first_human_at": _iso(outcome.first_human_at),
        "wall_seconds": outcome.wall_seconds,
        "working_seconds": outcome.working_seconds,
        "within_one_working_day": outcome.within_one_working_day,
        "bounced": outcome.bounced,
    }


def target_json(detail: TargetDetail) -> dict[str, Any]:
    return {
        **row_json(detail.row),
        "last_90_days": stats_json(detail.stats_90_days),
        "probes": [
            {
                "token": line.probe.token,
                "subject": line.probe.subject,
                "state": line.probe.state.value,
                "planned_at": _iso(line.probe.planned_at),
                "sent_at": _iso(line.probe.sent_at),
                "outcome": outcome_json(line.outcome),
            }
            for line in detail.probes
        ],
    }


def probe_json(detail: ProbeDetail) -> dict[str, Any]:
    probe = detail.probe
    return {
        "token": probe.token,
        "target_id": probe.target_id,
        "target_address": probe.target_address,
        "subject": probe.subject,
        "message_id": probe.message_id,
        "state": probe.state.value,
        "planned_at": _iso(probe.planned_at),
        "sent_at": _iso(probe.sent_at),
        "outcome": outcome_json(detail.outcome),
        "timeline": [
            {"at": _iso(e.at), "event": e.event, "detail": e.detail, "message_key": e.message_key}
            for e in detail.timeline
        ],
        "messages": [_message_json(m) for m in detail.messages],
    }


def _message_json(detail: MessageDetail) -> dict[str, Any]:
    m = detail.message
    return {
        "message_key": m.message_key,
        "message_id": m.message_id,
        "received_at": _iso(m.received_at),
        "kind": m.kind.value,
        "from": m.from_address,
        "subject": m.subject,
        "match_method": m.match_method.value,
        "ticket_number": m.ticket_number,
        "has_new_text": m.has_new_text,
        "body_kept": detail.body_kept,
        "headers": [[name, value] for name, value in detail.headers],
        "new_text": detail.new_text,
    }


# -- handlers ------------------------------------------------------------------------------


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


def _not_found_html(what: str) -> web.Response:
    body = f"<h1>Not found</h1><p>{esc(what)}</p><p><a href='/'>Back to the overview</a></p>"
    return _html(page("Not found", body), status=404)


def _not_found_json(what: str) -> web.Response:
    return web.json_response({"error": "not found", "detail": what}, status=404)


class StatusPages:
    """aiohttp handlers over a Dashboard; ``routes()`` goes to HttpServer(routes=...)."""

    def __init__(self, dashboard: Dashboard, clock: Callable[[], datetime]) -> None:
        self._dashboard = dashboard
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.overview),
            web.get("/targets/{target_id}", self.target),
            web.get("/probes/{token}", self.probe),
            web.get("/api/targets", self.api_targets),
            web.get("/api/targets/{target_id}", self.api_target),
            web.get("/api/probes/{token}", self.api_probe),
        ]

    async def overview(self, request: web.Request) -> web.Response:
        sort = request.query.get("sort", "name")
        descending = request.query.get("dir", "asc") == "desc"
        overview = await self._dashboard.overview()
        return _html(render_overview(overview, sort, descending))

    async def target(self, request: web.Request) -> web.Response:
        target_id = request.match_info["target_id"]
        detail = await self._dashboard.target(target_id)
        if detail is None:
            return _not_found_html(f"No target {target_id!r}.")
        return _html(render_target(detail, self._clock()))

    async def probe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        detail = await self._dashboard.probe(token)
        if detail is None:
            return _not_found_html(f"No probe {token!r}.")
        return _html(render_probe(detail, self._clock()))

    async def api_targets(self, request: web.Request) -> web.Response:
        return web.json_response(overview_json(await self._dashboard.overview()))

    async def api_target(self, request: web.Request) -> web.Response:
        target_id = request.match_info["target_id"]
        detail = await self._dashboard.target(target_id)
        if detail is None:
            return _not_found_json(f"no target {target_id!r}")
        return web.json_response(target_json(detail))

    async def api_probe(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        detail = await self._dashboard.probe(token)
        if detail is None:
            return _not_found_json(f"no probe {token!r}")
        return web.json_response(probe_json(detail))
