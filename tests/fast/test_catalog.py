"""Targets, questions, personas, opt-outs and the kommun list."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.catalog import (
    Kommun,
    OptOut,
    load_kommuner,
    load_optout,
    load_question_bank,
    load_targets,
    parse_optout,
)
from monitor.config import ConfigError
from monitor.domain.model import Target

REPO = Path(__file__).resolve().parents[2]
KOMMUNER = load_kommuner()
REQUIRED_AREAS = {
    "avfall",
    "bygglov",
    "förskola",
    "skola",
    "hemtjänst",
    "vatten",
    "parkering",
    "bibliotek",
    "gator",
    "föreningar",
    "fritid",
    "miljö",
}


def write_yaml(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def target_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "lulea",
        "name": "Luleå kommun",
        "address": "kommun@lulea.example.invalid",
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


# ---------------------------------------------------------------------------------------------
# Kommuner


def test_kommun_list_has_all_290_municipalities_with_counties() -> None:
    assert len(KOMMUNER) == 290
    assert KOMMUNER["0180"] == Kommun("0180", "Stockholm", "01", "Stockholms län")
    assert KOMMUNER["2580"].county == "Norrbottens län"
    assert all(re.fullmatch(r"[0-9]{4}", code) for code in KOMMUNER)


def test_kommun_list_is_a_fresh_copy_each_time() -> None:
    first = load_kommuner()
    first.clear()
    assert len(load_kommuner()) == 290


# ---------------------------------------------------------------------------------------------
# Targets


def test_targets_are_read_with_county_from_kommunkod(tmp_path: Path) -> None:
    entries = [
        target_entry(kommunkod="2580", tags=["region-norrbotten"], calendar="norr", paused=True),
        target_entry(id="kiruna", name="Kiruna kommun", address="info@kiruna.example.invalid"),
    ]
    path = write_yaml(tmp_path, "targets.yaml", {"targets": entries})

    targets = load_targets(path, KOMMUNER, {"norr"})

    assert targets == [
        Target(
            id="lulea",
            name="Luleå kommun",
            address="kommun@lulea.example.invalid",
            kommunkod="2580",
            county="Norrbottens län",
            tags=("region-norrbotten",),
            calendar="norr",
            paused=True,
        ),
        Target(id="kiruna", name="Kiruna kommun", address="info@kiruna.example.invalid"),
    ]


def test_an_unquoted_kommunkod_without_leading_zero_is_understood(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  - {id: gbg, name: Göteborg, address: a@b.se, kommunkod: 1480}\n")
    assert load_targets(path, KOMMUNER, ())[0].kommunkod == "1480"


def test_an_unquoted_kommunkod_with_leading_zero_stays_text(tmp_path: Path) -> None:
    # YAML 1.1 would read 0114 as the octal number 76.
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n  - {id: uv, name: Upplands Väsby, address: a@b.se, kommunkod: 0114}\n"
    )
    assert load_targets(path, KOMMUNER, ())[0].county == "Stockholms län"


def test_an_empty_target_list_is_valid(tmp_path: Path) -> None:
    assert load_targets(write_yaml(tmp_path, "t.yaml", {"targets": []}), KOMMUNER, ()) == []


TARGET_ERRORS: list[tuple[list[dict[str, Any]], str]] = [
    (
        [target_entry(), target_entry(id="a"), target_entry(id="b", kommunkod="9999")],
        "targets[2].kommunkod: unknown kommunkod (got '9999')",
    ),
    (
        [target_entry(kommunkod="180")],
        "targets[0].kommunkod: must be four digits, e.g. '0180' (got '180')",
    ),
    (
        [target_entry(address="kommun.example")],
        "targets[0].address: not an e-mail address (got 'kommun.example')",
    ),
    (
        [target_entry(id="Luleå kommun")],
        "targets[0].id: must be lower-case letters, digits, - or _ (got 'Luleå kommun')",
    ),
    (
        [target_entry(), target_entry(name="Luleå igen")],
        "targets[1].id: duplicate id, also used by targets[0] (got 'lulea')",
    ),
    (
        [{"id": "lulea", "address": "a@lulea.example.invalid"}],
        "targets[0].name: is required (got nothing)",
    ),
    (
        [target_entry(name="Luleå\nBcc: x@y.se")],
        "targets[0].name: must be one line (got 'Luleå\\nBcc: x@y.se')",
    ),
    (
        [target_entry(calendar="sommar")],
        "targets[0].calendar: not a calendar in the configuration's calendars (norr)"
        " (got 'sommar')",
    ),
    ([target_entry(paused="yes")], "targets[0].paused: must be true or false (got 'yes')"),
    ([target_entry(tags="storstad")], "targets[0].tags: must be a list (got 'storstad')"),
    ([target_entry(tags=[""])], "targets[0].tags[0]: must not be empty (got '')"),
    (
        [target_entry(adress="x@y.se")],
        "targets[0].adress: unknown key, did you mean 'address'? (got 'x@y.se')",
    ),
]


@pytest.mark.parametrize(("entries", "expected"), TARGET_ERRORS, ids=[e for _, e in TARGET_ERRORS])
def test_each_target_error_is_one_exact_line_naming_the_file(
    tmp_path: Path, entries: list[dict[str, Any]], expected: str
) -> None:
    path = write_yaml(tmp_path, "targets.yaml", {"targets": entries})
    with pytest.raises(ConfigError) as caught:
        load_targets(path, KOMMUNER, {"norr"})
    assert caught.value.errors == [expected]
    assert caught.value.file == path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "targets: is required (got nothing)"),
        ({"target": []}, "targets: is required (got nothing)"),
        ({"targets": {"lulea": {}}}, "targets: must be a list (got '{lulea}')"),
    ],
)
def test_a_targets_file_without_a_target_list_is_an_error(
    tmp_path: Path, data: object, expected: str
) -> None:
    path = write_yaml(tmp_path, "targets.yaml", data)
    with pytest.raises(ConfigError) as caught:
        load_targets(path, KOMMUNER, ())
    assert expected in caught.value.errors


def test_shipped_example_targets_are_placeholders_on_example_invalid() -> None:
    targets = load_targets(REPO / "config" / "targets.example.yaml", KOMMUNER, ())

    assert {target.kommunkod for target in targets} == {"0180", "1480", "1280", "0380", "2580"}
    assert all(target.address.endswith(".example.invalid") for target in targets)
    assert all(target.county for target in targets)


# ---------------------------------------------------------------------------------------------
# Questions


PACKAGED = load_question_bank(None)


def test_packaged_bank_has_enough_questions_across_every_area() -> None:
    assert len(PACKAGED.questions) >= 36
    assert PACKAGED.areas >= REQUIRED_AREAS
    for area in REQUIRED_AREAS:
        assert sum(question.area == area for question in PACKAGED.questions) >= 3, area


def test_packaged_bank_has_several_personas_with_ordinary_names() -> None:
    assert len(PACKAGED.personas) >= 4
    assert all(
        re.fullmatch(r"[A-ZÅÄÖ][a-zåäö]+ [A-ZÅÄÖ][a-zåäö]+", p.name) for p in PACKAGED.personas
    )


def test_packaged_ids_and_subjects_are_unique() -> None:
    for values in (
        [question.id for question in PACKAGED.questions],
        [question.subject for question in PACKAGED.questions],
        [persona.id for persona in PACKAGED.personas],
    ):
        assert len(values) == len(set(values))


@pytest.mark.parametrize("question", PACKAGED.questions, ids=lambda q: q.id)
def test_packaged_question_is_a_short_unsigned_greeting_and_question(question: Any) -> None:
    text = question.body.removeprefix("Hej!").strip()
    sentences = re.findall(r"[^.!?]+[.!?]", text)

    assert question.body.startswith("Hej!")
    assert 2 <= len(sentences) <= 4
    assert "?" in text
    assert "hälsningar" not in question.body.lower()
    assert "{" not in question.body
    assert not any(p.name in question.body for p in PACKAGED.personas)


def test_config_folder_questions_file_is_the_packaged_one() -> None:
    shipped = REPO / "config" / "questions.sv.yaml"
    assert shipped.is_symlink()
    assert shipped.resolve() == (REPO / "monitor" / "data" / "questions.sv.yaml").resolve()
    assert load_question_bank(shipped) == PACKAGED


QUESTION_ERRORS: list[tuple[object, str]] = [
    ({"personas": [], "questions": []}, "personas: must list at least one (got '[]')"),
    (
        {"personas": [{"id": "a", "name": "Anna"}], "questions": []},
        "questions: must list at least one (got '[]')",
    ),
    (
        {
            "personas": [{"id": "a", "name": "Anna"}, {"id": "a", "name": "Bo"}],
            "questions": [{"id": "q", "area": "avfall", "subject": "S", "body": "B"}],
        },
        "personas[1].id: duplicate id, also used by personas[0] (got 'a')",
    ),
    (
        {
            "personas": [{"id": "a", "name": "Anna"}],
            "questions": [{"id": "q", "area": "avfall", "subject": "S", "text": "B"}],
        },
        "questions[0].text: unknown key (got 'B')",
    ),
    (
        {
            "personas": [{"id": "a", "name": "Anna"}],
            "questions": [{"id": "q", "area": "avfall", "subject": "S\nT", "body": "B"}],
        },
        "questions[0].subject: must be one line (got 'S\\nT')",
    ),
]


@pytest.mark.parametrize(("data", "expected"), QUESTION_ERRORS, ids=[e for _, e in QUESTION_ERRORS])
def test_each_question_file_error_is_one_exact_line(
    tmp_path: Path, data: object, expected: str
) -> None:
    path = write_yaml(tmp_path, "questions.yaml", data)
    with pytest.raises(ConfigError) as caught:
        load_question_bank(path)
    assert expected in caught.value.errors
    assert caught.value.file == path


def test_a_custom_question_file_replaces_the_packaged_bank(tmp_path: Path) -> None:
    data = {
        "personas": [{"id": "bo", "name": "Bo Ek"}],
        "questions": [{"id": "q1", "area": "avfall", "subject": "Sopor", "body": "Hej! När?"}],
    }
    bank = load_question_bank(write_yaml(tmp_path, "q.yaml", data))
    assert [p.name for p in bank.personas] == ["Bo Ek"]
    assert [q.subject for q in bank.questions] == ["Sopor"]


# ---------------------------------------------------------------------------------------------
# Opt-out


OPTOUT = parse_optout(
    "# Kommuner som bett att slippa\n"
    "Registrator@Kommun-A.example.invalid\n"
    "@kommun-b.example.invalid   # hela domänen\n"
    "kommun-c.example.invalid\n"
    "\n"
)


@pytest.mark.parametrize(
    ("address", "covered"),
    [
        ("registrator@kommun-a.example.invalid", True),
        ("REGISTRATOR@KOMMUN-A.EXAMPLE.INVALID", True),
        ("<registrator@kommun-a.example.invalid>", True),
        ("kontaktcenter@kommun-a.example.invalid", False),
        ("info@kommun-b.example.invalid", True),
        ("info@skola.kommun-b.example.invalid", True),
        ("info@inte-kommun-b.example.invalid", False),
        ("info@kommun-c.example.invalid", True),
        ("info@kommun-d.example.invalid", False),
    ],
)
def test_optout_covers_listed_addresses_and_domains_with_subdomains(
    address: str, covered: bool
) -> None:
    assert OPTOUT.covers(address) is covered


def test_optout_parsing_lowercases_and_ignores_comments() -> None:
    assert (
        OptOut(
            addresses=frozenset({"registrator@kommun-a.example.invalid"}),
            domains=frozenset({"kommun-b.example.invalid", "kommun-c.example.invalid"}),
        )
        == OPTOUT
    )


def test_optout_bad_lines_are_reported_by_line_number(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text("ok@kommun.example.invalid\nnågon på kommunen\n@\n")
    with pytest.raises(ConfigError) as caught:
        load_optout(path)
    assert caught.value.errors == [
        "line 2: not an e-mail address or domain (got 'någon på kommunen')",
        "line 3: not an e-mail address or domain (got '@')",
    ]
    assert caught.value.file == path


def test_no_optout_file_covers_nobody() -> None:
    assert not load_optout(None).covers("a@kommun.example.invalid")


def test_shipped_example_optout_list_loads() -> None:
    optout = load_optout(REPO / "config" / "optout.example.txt")
    assert optout.covers("x@optout-exempel.example.invalid")
