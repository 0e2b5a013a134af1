"""Who may see what: roles, scopes and the users they describe.

A scope limits a user to some targets: by id, by tag (``tag:NAME``) or by county
(``county:NAME``); a target is in scope when any entry matches it, and an empty scope covers
every target. The role decides what a user sees of the targets in scope: a ``viewer`` sees
figures and timelines, a ``reviewer`` also the text of messages and grades answers, an
``admin`` sees everything, including other people's grades.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.domain.model import Target

TAG_PREFIX = "tag:"
COUNTY_PREFIX = "county:"


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class ScopeKind(StrEnum):
    TARGET = "target"
    TAG = "tag"
    COUNTY = "county"


@dataclass(frozen=True)
class ScopeEntry:
    """One entry of a scope, as written: ``lund``, ``tag:skane`` or ``county:Skåne län``."""

    kind: ScopeKind
    value: str

    def matches(self, target: Target) -> bool:
        if self.kind is ScopeKind.TARGET:
            return target.id == self.value
        if self.kind is ScopeKind.TAG:
            return self.value in target.tags
        # County names are typed by people ("skåne län"): compared without regard to case.
        return target.county is not None and target.county.casefold() == self.value.casefold()

    def __str__(self) -> str:
        if self.kind is ScopeKind.TARGET:
            return self.value
        return f"{self.kind.value}:{self.value}"


def parse_scope_entry(text: str) -> ScopeEntry:
    """``"tag:skane"`` -> ScopeEntry(TAG, "skane"); ValueError says what is wrong."""
    value = text.strip()
    for prefix, kind in ((TAG_PREFIX, ScopeKind.TAG), (COUNTY_PREFIX, ScopeKind.COUNTY)):
        if value.startswith(prefix):
            name = value[len(prefix) :].strip()
            if not name:
                raise ValueError(f"needs a name after {prefix}")
            return ScopeEntry(kind, name)
    if not value:
        raise ValueError("must not be empty")
    if ":" in value:
        raise ValueError("must be a target id, tag:NAME or county:NAME")
    return ScopeEntry(ScopeKind.TARGET, value)


@dataclass(frozen=True)
class Scope:
    """The targets a user may see; no entries means every target."""

    entries: tuple[ScopeEntry, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Scope:
        return cls(tuple(parse_scope_entry(text) for text in texts))

    @property
    def is_everything(self) -> bool:
        return not self.entries

    def covers(self, target: Target) -> bool:
        return self.is_everything or any(entry.matches(target) for entry in self.entries)

    def __str__(self) -> str:
        return ", ".join(str(entry) for entry in self.entries) if self.entries else "all"


EVERYTHING = Scope()


@dataclass(frozen=True)
class User:
    """A person using the status page. The password hash never lives here."""

    name: str
    role: Role
    scope: Scope = field(default=EVERYTHING)


# Names a users file cannot hold (parentheses are not allowed in user names), so neither
# stand-in can be confused with a real account.
UNRESTRICTED = User("(operator)", Role.ADMIN, EVERYTHING)  # no users file: as before accounts
PUBLIC = User("(public)", Role.VIEWER, EVERYTHING)  # anonymous, on the public overview


def may_see_message_text(role: Role) -> bool:
    """New text and headers of messages are for reviewers and admins; viewers see figures."""
    return role in (Role.REVIEWER, Role.ADMIN)


def may_grade(role: Role) -> bool:
    return role in (Role.REVIEWER, Role.ADMIN)


def may_see_all_grades(role: Role) -> bool:
    return role is Role.ADMIN


def may_see_target(user: User, target: Target) -> bool:
    return user.scope.covers(target)


def visible_targets(user: User, targets: Iterable[Target]) -> list[Target]:
    """The targets ``user`` may see, in the order given."""
    return [target for target in targets if user.scope.covers(target)]


def visible_target_ids(user: User, targets: Iterable[Target]) -> frozenset[str]:
    return frozenset(target.id for target in visible_targets(user, targets))


def entries_matching_nothing(scope: Scope, targets: Sequence[Target]) -> list[ScopeEntry]:
    """Entries of ``scope`` that match none of ``targets``: most likely a typo."""
    return [entry for entry in scope.entries if not any(entry.matches(t) for t in targets)]
