"""What svarstid measures and with what: targets, questions, personas, opt-outs, kommuner.

Each file is read strictly, like the main configuration: unknown keys are rejected and
every problem is one line ``key.path: what is wrong (got 'value')`` in a ConfigError that
names the file.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo, model_validator

from monitor.config import (
    ConfigError,
    check_address,
    check_bool,
    check_text,
    fail,
    is_address,
    is_domain,
    parse_yaml,
    read_text,
    validate,
)
from monitor.domain.model import Persona, Question, Target

PACKAGED_QUESTIONS = "questions.sv.yaml"
_KOMMUNER_CSV = "kommuner.csv"
_SLUG = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True)
class Kommun:
    """One of Sweden's 290 municipalities, as listed by SCB."""

    kommunkod: str  # four digits, e.g. "0180"
    name: str  # e.g. "Stockholm"
    county_code: str  # two digits, e.g. "01"
    county: str  # e.g. "Stockholms län"


@dataclass(frozen=True)
class QuestionBank:
    personas: tuple[Persona, ...]
    questions: tuple[Question, ...]

    @property
    def areas(self) -> frozenset[str]:
        return frozenset(question.area for question in self.questions)


@dataclass(frozen=True)
class OptOut:
    """Addresses and domains that asked never to be probed (all lower case)."""

    addresses: frozenset[str]
    domains: frozenset[str]

    def covers(self, address: str) -> bool:
        """True for a listed address, or one in a listed domain or any subdomain of it."""
        bare = address.strip().strip("<>").strip().lower()
        if bare in self.addresses:
            return True
        labels = bare.rpartition("@")[2].split(".")
        return any(".".join(labels[index:]) in self.domains for index in range(len(labels)))


NO_OPTOUT = OptOut(addresses=frozenset(), domains=frozenset())


# ---------------------------------------------------------------------------------------------
# Kommuner


def load_kommuner() -> dict[str, Kommun]:
    """Every municipality by kommunkod, from the packaged SCB list."""
    return dict(_kommuner())


@functools.cache
def _kommuner() -> Mapping[str, Kommun]:
    text = resources.files("monitor").joinpath("data", _KOMMUNER_CSV).read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return {
        row["kommunkod"]: Kommun(
            kommunkod=row["kommunkod"],
            name=row["kommun"],
            county_code=row["lanskod"],
            county=row["lan"],
        )
        for row in rows
    }


# ---------------------------------------------------------------------------------------------
# Field validators


def check_slug(value: Any, _info: ValidationInfo | None = None) -> str:
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise fail("must be lower-case letters, digits, - or _", value)
    return value


def check_one_line(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    if "\n" in text or "\r" in text:
        # It goes into a mail header (Subject, the From display name).
        raise fail("must be one line", value)
    return text


def check_kommunkod(value: Any, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    code = _four_digits(value)
    if code is None:
        raise fail("must be four digits, e.g. '0180'", value)
    kommuner: Mapping[str, Kommun] = (info.context or {}).get("kommuner", {})
    if code not in kommuner:
        raise fail("unknown kommunkod", value)
    return code


def _four_digits(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 9999:
        return f"{value:04d}"  # an unquoted 1480 in YAML
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}", value.strip()):
        return value.strip()
    return None


def check_calendar_name(value: Any, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    name = check_text(value)
    known: Collection[str] = (info.context or {}).get("calendars", ())
    if name not in known:
        choices = ", ".join(sorted(known)) or "none configured"
        raise fail(f"not a calendar in the configuration's calendars ({choices})", value)
    return name


def _unique_ids(entries: Sequence[Any], section: str) -> None:
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.id in first_index:
            also = f"{section}[{first_index[entry.id]}]"
            raise fail(f"duplicate id, also used by {also}", entry.id, at=(section, index, "id"))
        first_index[entry.id] = index


Slug = Annotated[str, PlainValidator(check_slug)]
OneLine = Annotated[str, PlainValidator(check_one_line)]
Text = Annotated[str, PlainValidator(check_text)]
_STRICT = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Targets


class _TargetEntry(BaseModel):
    model_config = _STRICT
    id: Slug
    name: OneLine
    address: Annotated[str, PlainValidator(check_address)]
    kommunkod: Annotated[str | None, PlainValidator(check_kommunkod)] = None
    tags: tuple[Text, ...] = ()
    calendar: Annotated[str | None, PlainValidator(check_calendar_name)] = None
    paused: Annotated[bool, PlainValidator(check_bool)] = False


class _TargetsFile(BaseModel):
    model_config = _STRICT
    targets: tuple[_TargetEntry, ...]

    @model_validator(mode="after")
    def _ids_are_unique(self) -> _TargetsFile:
        _unique_ids(self.targets, "targets")
        return self


def load_targets(
    path: Path, kommuner: Mapping[str, Kommun], calendar_names: Collection[str]
) -> list[Target]:
    """The targets in ``path``; ``county`` is filled in from the kommunkod."""
    raw = parse_yaml(read_text(path), path)
    context = {"kommuner": kommuner, "calendars": calendar_names}
    parsed = validate(_TargetsFile, raw, context, path)
    return [_target(entry, kommuner) for entry in parsed.targets]


def _target(entry: _TargetEntry, kommuner: Mapping[str, Kommun]) -> Target:
    kommun = kommuner.get(entry.kommunkod) if entry.kommunkod else None
    return Target(
        id=entry.id,
        name=entry.name,
        address=entry.address,
        kommunkod=entry.kommunkod,
        county=kommun.county if kommun else None,
        tags=entry.tags,
        calendar=entry.calendar,
        paused=entry.paused,
    )


# ---------------------------------------------------------------------------------------------
# Questions and personas


class _PersonaEntry(BaseModel):
    model_config = _STRICT
    id: Slug
    name: OneLine


class _QuestionEntry(BaseModel):
    model_config = _STRICT
    id: Slug
    area: Text
    subject: OneLine
    body: Text


class _QuestionsFile(BaseModel):
    model_config = _STRICT
    personas: tuple[_PersonaEntry, ...]
    questions: tuple[_QuestionEntry, ...]

    @model_validator(mode="after")
    def _usable(self) -> _QuestionsFile:
        for section, entries in (("personas", self.personas), ("questions", self.questions)):
            if not entries:
                raise fail("must list at least one", [], at=(section,))
            _unique_ids(entries, section)
        return self


def load_question_bank(path: Path | None) -> QuestionBank:
    """The questions and personas in ``path``; None = the packaged Swedish bank."""
    if path is None:
        text = resources.files("monitor").joinpath("data", PACKAGED_QUESTIONS).read_text("utf-8")
        source = Path(PACKAGED_QUESTIONS)
    else:
        text, source = read_text(path), path
    parsed = validate(_QuestionsFile, parse_yaml(text, source), {}, source)
    return QuestionBank(
        personas=tuple(Persona(id=entry.id, name=entry.name) for entry in parsed.personas),
        questions=tuple(
            Question(id=entry.id, area=entry.area, subject=entry.subject, body=entry.body)
            for entry in parsed.questions
        ),
    )


# ---------------------------------------------------------------------------------------------
# Opt-out


def load_optout(path: Path | None) -> OptOut:
    """One address, ``@domain`` or ``domain`` per line; ``#`` starts a comment."""
    if path is None:
        return NO_OPTOUT
    return parse_optout(read_text(path), path)


def parse_optout(text: str, path: Path | None = None) -> OptOut:
    addresses: set[str] = set()
    domains: set[str] = set()
    errors: list[str] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        entry = re.sub(r"(^|\s)#.*", "", raw_line).strip().lower()
        if not entry:
            continue
        domain = entry.removeprefix("@")
        if "@" not in domain and is_domain(domain):
            domains.add(domain)
        elif is_address(entry):
            addresses.add(entry)
        else:
            errors.append(f"line {number}: not an e-mail address or domain (got '{entry}')")
    if errors:
        raise ConfigError(errors, path)
    return OptOut(addresses=frozenset(addresses), domains=frozenset(domains))
