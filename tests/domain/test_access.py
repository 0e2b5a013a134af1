"""Roles and scopes: which targets a user sees, and what of them."""

from __future__ import annotations

import pytest

from monitor.domain.access import (
    PUBLIC,
    UNRESTRICTED,
    Role,
    Scope,
    ScopeEntry,
    ScopeKind,
    User,
    entries_matching_nothing,
    may_grade,
    may_see_all_grades,
    may_see_message_text,
    may_see_target,
    parse_scope_entry,
    visible_target_ids,
    visible_targets,
)
from monitor.domain.model import Target

LUND = Target("lund", "Lunds kommun", "kc@lund.example", county="Skåne län", tags=("skane",))
MALMO = Target("malmo", "Malmö stad", "kc@malmo.example", county="Skåne län", tags=("storstad",))
UMEA = Target("umea", "Umeå kommun", "kc@umea.example", county="Västerbottens län")
NOWHERE = Target("ovrig", "Övrig", "kc@ovrig.example")
TARGETS = (LUND, MALMO, UMEA, NOWHERE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lund", ScopeEntry(ScopeKind.TARGET, "lund")),
        ("  lund ", ScopeEntry(ScopeKind.TARGET, "lund")),
        ("tag:skane", ScopeEntry(ScopeKind.TAG, "skane")),
        ("county:Skåne län", ScopeEntry(ScopeKind.COUNTY, "Skåne län")),
        ("county: Skåne län ", ScopeEntry(ScopeKind.COUNTY, "Skåne län")),
    ],
)
def test_scope_entries_are_target_ids_tags_or_counties(text: str, expected: ScopeEntry) -> None:
    assert parse_scope_entry(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("tag:", "needs a name after tag:"),
        ("county:  ", "needs a name after county:"),
        ("kommun:lund", "must be a target id, tag:NAME or county:NAME"),
    ],
)
def test_a_malformed_scope_entry_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_scope_entry(text)


@pytest.mark.parametrize(
    ("scope", "visible"),
    [
        ([], ["lund", "malmo", "umea", "ovrig"]),
        (["lund"], ["lund"]),
        (["tag:skane"], ["lund"]),
        (["county:Skåne län"], ["lund", "malmo"]),
        (["county:skåne LÄN"], ["lund", "malmo"]),
        (["umea", "tag:storstad"], ["malmo", "umea"]),
        (["tag:skane", "county:Skåne län"], ["lund", "malmo"]),
        (["stockholm"], []),
        (["tag:Skane"], []),  # tags are exact, as in reports' --group-by tag:NAME
    ],
)
def test_a_user_sees_the_targets_any_scope_entry_matches(
    scope: list[str], visible: list[str]
) -> None:
    user = User("anna", Role.VIEWER, Scope.parse(scope))

    assert [target.id for target in visible_targets(user, TARGETS)] == visible
    assert visible_target_ids(user, TARGETS) == frozenset(visible)
    assert [t.id for t in TARGETS if may_see_target(user, t)] == visible


@pytest.mark.parametrize(
    ("role", "message_text", "grade", "all_grades"),
    [
        (Role.VIEWER, False, False, False),
        (Role.REVIEWER, True, True, False),
        (Role.ADMIN, True, True, True),
    ],
)
def test_roles_decide_what_is_shown_of_a_visible_target(
    role: Role, message_text: bool, grade: bool, all_grades: bool
) -> None:
    assert may_see_message_text(role) is message_text
    assert may_grade(role) is grade
    assert may_see_all_grades(role) is all_grades


@pytest.mark.parametrize(
    ("user", "sees_text"),
    [(UNRESTRICTED, True), (PUBLIC, False)],
)
def test_the_stand_in_users_see_every_target(user: User, sees_text: bool) -> None:
    assert visible_targets(user, TARGETS) == list(TARGETS)
    assert may_see_message_text(user.role) is sees_text


@pytest.mark.parametrize(
    ("scope", "text"),
    [
        ([], "all"),
        (["lund", "tag:skane", "county:Skåne län"], "lund, tag:skane, county:Skåne län"),
    ],
)
def test_a_scope_is_written_as_it_is_configured(scope: list[str], text: str) -> None:
    assert str(Scope.parse(scope)) == text


@pytest.mark.parametrize(
    ("scope", "unmatched"),
    [
        ([], []),
        (["lund", "tag:skane"], []),
        (["lunds", "tag:skåne", "county:Skåne län"], ["lunds", "tag:skåne"]),
    ],
)
def test_scope_entries_matching_no_target_are_found(scope: list[str], unmatched: list[str]) -> None:
    found = entries_matching_nothing(Scope.parse(scope), TARGETS)

    assert [str(entry) for entry in found] == unmatched
