"""`svarstid inspect`: classify and match message files without a daemon or a database.

The contract tools and tests rely on (issue 3): one JSON object per message and line with
file, kind, permanent, probe_token, match, has_new_text, received_at and, for a matched
message with a known arrival time, working_seconds from the probe's sent_at and
within_one_working_day on the default calendar. Without --json a readable table.

A file that cannot be read is reported on stderr and makes the exit code 1; the other
files are still inspected. Message bodies are never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from monitor.domain.calendar import OfficeCalendar, swedish_default_calendar
from monitor.domain.classify import classify
from monitor.domain.mailparse import parse_message
from monitor.domain.matching import ProbeIndex, match_message
from monitor.domain.model import MessageKind, ProbeCandidate
from monitor.domain.newtext import has_new_text
from monitor.domain.worktime import WORKING_DAY_SECONDS, within_horizon, working_seconds

PROBE_KEYS = (
    "token",
    "reply_address",
    "message_id",
    "subject",
    "body",
    "target_address",
    "sent_at",
)
# Arrival unknown (no Received, no Date): no probe can be ruled out as sent later, and
# the time-window methods (subject, sender) cannot apply.
_UNKNOWN_ARRIVAL = datetime.max.replace(tzinfo=UTC)

DATE_BEYOND_HORIZON = "date-beyond-horizon"

EXIT_OK = 0
EXIT_UNREADABLE_MESSAGE = 1
EXIT_BAD_PROBES = 2


def load_probes_json(path: Path) -> list[ProbeCandidate]:
    """Probes from a JSON list of objects; ValueError names the first bad entry."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of probe objects")
    return [_probe(entry, number) for number, entry in enumerate(data)]


def _probe(entry: object, number: int) -> ProbeCandidate:
    if not isinstance(entry, dict):
        raise ValueError(f"probe #{number}: expected an object")
    missing = [key for key in PROBE_KEYS if not isinstance(entry.get(key), str)]
    if missing:
        raise ValueError(f"probe #{number}: missing or non-text keys {', '.join(missing)}")
    sent_at = datetime.fromisoformat(entry["sent_at"])
    if sent_at.tzinfo is None:
        raise ValueError(f"probe #{number}: sent_at needs a UTC offset")
    target = entry["target_address"].strip().lower()
    return ProbeCandidate(
        token=entry["token"].strip().lower(),
        target_id=str(entry.get("target_id") or target),
        target_address=target,
        reply_address=entry["reply_address"].strip().lower(),
        message_id=entry["message_id"].strip(),
        subject=entry["subject"],
        body=entry["body"],
        sent_at=sent_at,
    )


def inspect_file(
    path: Path, probes: Sequence[ProbeCandidate], cal: OfficeCalendar | None = None
) -> dict[str, object]:
    """What svarstid concludes about one message file; OSError when it cannot be read."""
    msg = parse_message(path.read_bytes())
    verdict = classify(msg)
    received_at = msg.received_at or msg.date
    found = match_message(msg, verdict.kind, probes, received_at=received_at or _UNKNOWN_ARRIVAL)
    probe = _probe_by_token(probes, found.probe_token)
    human = verdict.kind is MessageKind.HUMAN
    report: dict[str, object] = {
        "file": str(path),
        "message_id": msg.message_id,
        "kind": verdict.kind.value,
        "permanent": verdict.permanent,
        "probe_token": found.probe_token,
        "match": found.method.value,
        "has_new_text": human and has_new_text(msg, probe.body if probe else None),
        "received_at": received_at.isoformat() if received_at else None,
        "working_seconds": None,
        "within_one_working_day": None,
        "ticket_number": verdict.ticket_number,
        "reasons": list(verdict.reasons),
        "defects": list(msg.defects),
    }
    if probe is not None and received_at is not None:
        if within_horizon(probe.sent_at, received_at):
            seconds = working_seconds(cal or swedish_default_calendar(), probe.sent_at, received_at)
            report["working_seconds"] = seconds
            report["within_one_working_day"] = seconds <= WORKING_DAY_SECONDS
        else:  # a date years after the probe is broken: reported, not measured
            report["defects"] = [*msg.defects, DATE_BEYOND_HORIZON]
    return report


def _probe_by_token(probes: Sequence[ProbeCandidate], token: str | None) -> ProbeCandidate | None:
    if token is None:
        return None
    if isinstance(probes, ProbeIndex):
        return probes.by_token.get(token)
    return next((p for p in probes if p.token == token), None)


def run_inspect(
    paths: Sequence[Path],
    probes_path: Path | None,
    as_json: bool,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Inspect every file, print JSON lines or a table; the exit code."""
    errors = err if err is not None else sys.stderr
    try:
        probes = ProbeIndex(load_probes_json(probes_path) if probes_path else ())
    except (OSError, ValueError) as error:
        print(f"svarstid inspect: cannot read probes {probes_path}: {error}", file=errors)
        return EXIT_BAD_PROBES
    cal = swedish_default_calendar()
    reports: list[dict[str, object]] = []
    status = EXIT_OK
    for path in paths:
        try:
            report = inspect_file(path, probes, cal)
        except OSError as error:
            print(f"svarstid inspect: cannot read {path}: {error.strerror or error}", file=errors)
            status = EXIT_UNREADABLE_MESSAGE
            continue
        except (ValueError, OverflowError) as error:  # one bad file never hides the others
            reason = f"{type(error).__name__}: {error}"
            print(f"svarstid inspect: cannot inspect {path}: {reason}", file=errors)
            status = EXIT_UNREADABLE_MESSAGE
            continue
        if as_json:
            print(json.dumps(report, ensure_ascii=False), file=out)
        reports.append(report)
    if not as_json:
        out.write(format_table(reports))
    return status


_COLUMNS = (
    ("file", "FILE"),
    ("kind", "KIND"),
    ("permanent", "PERM"),
    ("probe_token", "PROBE"),
    ("match", "MATCH"),
    ("has_new_text", "NEW"),
    ("received_at", "RECEIVED"),
    ("working_hours", "WORK_H"),
    ("within_one_working_day", "1WD"),
    ("ticket_number", "TICKET"),
)


def format_table(reports: Sequence[dict[str, object]]) -> str:
    """An aligned plain-text table, one row per report; '-' for no value."""
    rows = [[title for _, title in _COLUMNS]]
    rows += [[_printable(_cell(report, key)) for key, _ in _COLUMNS] for report in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def _cell(report: dict[str, object], key: str) -> str:
    if key == "file":
        return Path(str(report["file"])).name
    if key == "working_hours":
        seconds = report.get("working_seconds")
        return f"{seconds / 3600:.1f}" if isinstance(seconds, float) else "-"
    value = report.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _printable(text: str) -> str:
    """Mail data made terminal-safe: control and format characters shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
