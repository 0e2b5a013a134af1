"""`svarstid inspect` contract: JSON lines per message, a table, exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from monitor.service.inspection import (
    EXIT_BAD_PROBES,
    EXIT_OK,
    EXIT_UNREADABLE_MESSAGE,
    inspect_file,
    load_probes_json,
    run_inspect,
)

SAMPLES = Path(__file__).parent.parent / "data" / "match" / "eml"
PROBES = SAMPLES / "probes.json"
CONTRACT_KEYS = {
    "file",
    "kind",
    "permanent",
    "probe_token",
    "match",
    "has_new_text",
    "received_at",
    "working_seconds",
    "within_one_working_day",
    "ticket_number",
    "reasons",
    "defects",
}


def run(
    paths: list[Path], probes: Path | None = PROBES, as_json: bool = True
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_inspect(paths, probes, as_json, out, err)
    return code, out.getvalue(), err.getvalue()


def json_lines(text: str) -> dict[str, dict[str, object]]:
    reports = [json.loads(line) for line in text.splitlines()]
    return {Path(str(r["file"])).name: r for r in reports}


def test_json_mode_prints_one_object_per_message_with_the_contract_keys() -> None:
    paths = sorted(SAMPLES.glob("*.eml"))
    code, out, err = run(paths)
    assert (code, err) == (EXIT_OK, "")
    reports = json_lines(out)
    assert len(out.splitlines()) == len(paths) == len(reports)
    for report in reports.values():
        assert report.keys() >= CONTRACT_KEYS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "human-subject-with-ticket-tag-to-base-address.eml",
            {
                "kind": "human",
                "probe_token": "q7m2xk4pna",
                "match": "subject",
                "has_new_text": True,
                "received_at": "2025-03-11T10:15:00+01:00",
                "working_seconds": 35100.0,  # Mon 09:30-17:00 + Tue 08:00-10:15
                "within_one_working_day": False,
                "ticket_number": "2025-0042",
                "permanent": None,
            },
        ),
        (
            "human-empty-reply-thunderbird-quote-only.eml",
            {
                "kind": "human",
                "probe_token": "b3vtr6yhqe",
                "match": "address",
                "has_new_text": False,
                "working_seconds": 12900.0,  # Tue 14:05-17:00 + Wed 08:00-08:40
                "within_one_working_day": True,
            },
        ),
        (
            "auto-reply-token-address.eml",
            {
                "kind": "auto_reply",
                "probe_token": "q7m2xk4pna",
                "match": "address",
                "has_new_text": False,
                "working_seconds": 70.0,
            },
        ),
        (
            "bulk-newsletter-no-date-no-received.eml",
            {
                "kind": "bulk",
                "probe_token": None,
                "match": "none",
                "has_new_text": False,
                "received_at": None,
                "working_seconds": None,
                "within_one_working_day": None,
            },
        ),
    ],
)
def test_each_sample_is_classified_matched_and_timed(
    name: str, expected: dict[str, object]
) -> None:
    report = inspect_file(SAMPLES / name, load_probes_json(PROBES))
    assert {key: report[key] for key in expected} == expected


def test_an_unreadable_file_is_reported_on_stderr_and_the_others_still_inspected(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "saknas.eml"
    good = SAMPLES / "auto-reply-token-address.eml"
    code, out, err = run([missing, good])
    assert code == EXIT_UNREADABLE_MESSAGE
    assert "saknas.eml" in err and len(err.splitlines()) == 1
    assert list(json_lines(out)) == ["auto-reply-token-address.eml"]


def test_without_probes_nothing_matches_but_kinds_are_given() -> None:
    code, out, _ = run([SAMPLES / "auto-reply-token-address.eml"], probes=None)
    report = json_lines(out)["auto-reply-token-address.eml"]
    assert code == EXIT_OK
    assert (report["kind"], report["probe_token"], report["match"]) == ("auto_reply", None, "none")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"token": "x"}',
        '[{"token": "x"}]',
        '[{"token": "q", "reply_address": "a", "message_id": "<m>", "subject": "s", "body": "b",'
        ' "target_address": "t@x.se", "sent_at": "2025-03-10T09:30:00"}]',
    ],
    ids=["not_json", "not_a_list", "missing_keys", "sent_at_without_offset"],
)
def test_a_bad_probes_file_is_an_error_before_any_message(tmp_path: Path, content: str) -> None:
    probes = tmp_path / "probes.json"
    probes.write_text(content, encoding="utf-8")
    code, out, err = run([SAMPLES / "auto-reply-token-address.eml"], probes=probes)
    assert (code, out) == (EXIT_BAD_PROBES, "")
    assert "probes" in err


def test_table_mode_prints_an_aligned_header_and_one_row_per_message() -> None:
    paths = sorted(SAMPLES.glob("*.eml"))
    code, out, _ = run(paths, as_json=False)
    lines = out.splitlines()
    assert code == EXIT_OK and len(lines) == len(paths) + 1
    header = lines[0]
    assert header.split()[:6] == ["FILE", "KIND", "PERM", "PROBE", "MATCH", "NEW"]
    kind_column = header.index("KIND")
    assert all(line[kind_column - 2 : kind_column] == "  " for line in lines[1:])
    row = next(line for line in lines if line.startswith("human-subject"))
    assert row.split()[1:6] == ["human", "-", "q7m2xk4pna", "subject", "yes"]


def test_probes_json_keys_become_probe_candidates() -> None:
    probes = load_probes_json(PROBES)
    assert [p.token for p in probes] == ["q7m2xk4pna", "b3vtr6yhqe"]
    first = probes[0]
    assert first.target_id == first.target_address == "kommun@vaxjo.se"
    assert first.sent_at.utcoffset() is not None
    assert first.message_id == "<probe.q7m2xk4pna@kontroll.example.org>"


def with_dates(source: Path, target: Path, year: int, *, offset: str = "+0100") -> Path:
    """``source`` with every date header moved to ``year`` (same day, hour and offset)."""
    text = source.read_text(encoding="utf-8")
    text = re.sub(
        r"\b(\d{1,2} \w{3}) 20\d\d (\d\d:\d\d:\d\d) [+-]\d{4}", rf"\1 {year} \2 {offset}", text
    )
    target.write_text(text, encoding="utf-8")
    return target


@pytest.mark.parametrize(("year", "offset"), [(9999, "-0100"), (9999, "+0100"), (9000, "+0100")])
def test_a_mail_dated_far_in_the_future_is_reported_as_such_and_the_others_still_inspected(
    tmp_path: Path, year: int, offset: str
) -> None:
    good = SAMPLES / "auto-reply-token-address.eml"
    future = with_dates(good, tmp_path / "framtid.eml", year, offset=offset)
    code, out, err = run([future, good])
    reports = json_lines(out)
    assert list(reports) == ["framtid.eml", "auto-reply-token-address.eml"]
    assert reports["framtid.eml"]["probe_token"] == "q7m2xk4pna"
    assert reports["framtid.eml"]["working_seconds"] is None
    assert "date-beyond-horizon" in reports["framtid.eml"]["defects"]
    assert reports["auto-reply-token-address.eml"]["working_seconds"] == 70.0
    assert (code, err) == (EXIT_OK, "")


def test_a_mail_a_year_late_is_still_timed(tmp_path: Path) -> None:
    late = with_dates(SAMPLES / "auto-reply-token-address.eml", tmp_path / "sen.eml", 2026)
    report = inspect_file(late, load_probes_json(PROBES))
    assert isinstance(report["working_seconds"], float) and report["working_seconds"] > 0
    assert "date-beyond-horizon" not in report["defects"]  # type: ignore[operator]


def test_table_mode_shows_control_characters_escaped(tmp_path: Path) -> None:
    source = SAMPLES / "human-subject-with-ticket-tag-to-base-address.eml"
    hostile = tmp_path / "svar\x1b]8;;x\x1b\\länk\x1b[2J.eml"
    hostile.write_bytes(source.read_bytes())
    code, out, _err = run([hostile], as_json=False)
    assert code == EXIT_OK
    assert "\x1b" not in out
    assert "svar\\u001b]8;;x\\u001b\\länk\\u001b[2J.eml" in out
