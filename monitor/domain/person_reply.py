"""Whether the new text of a message reads as a person's reply to the asker.

An officer's answer can arrive through a case system's noreply address with
``Auto-Submitted: auto-generated``, or under a receipt's subject; headers and sender then
say "automatic" while the text is plainly written by someone. Three signs of a person are
looked for, each general rather than tied to one system:

- a salutation that names the asker ("Hej Jonas!", "Hi Anna,");
- a sign-off followed by a person's name ("Med vänlig hälsning / Susanne Wallin", "/Lotta");
- content about the question: words of the question (its subject or the quoted original)
  used in the writer's own sentences, not in a copied "Ärende: …" line.

Out-of-office wording and a registered-case statement are what automatic messages say, so
they keep a message automatic whatever else it carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SALUTATION = re.compile(
    r"^[ \t]*(?i:hej|hejsan|hallå|god[ \t]+(?:morgon|dag|eftermiddag)|hi|hello|dear|bästa)"
    r"[ \t]+(?P<name>[A-ZÅÄÖÉ][\w\-]+)",
)
_SIGN_OFF = re.compile(
    r"^[ \t]*(?:med[ \t]+)?(?:vänlig(?:a)?[ \t]+hälsning(?:ar)?|bästa[ \t]+hälsningar|"
    r"hälsningar|hälsning|mvh|best[ \t]+regards|kind[ \t]+regards|regards|"
    r"sincerely)[ \t,.!]*$",
    re.IGNORECASE,
)
_SLASH_NAME = re.compile(r"^[ \t]*/[ \t]*[A-ZÅÄÖ][a-zåäöé]+(?:[ \t]+[A-ZÅÄÖ][a-zåäöé]+)?[ \t]*$")
_NAME_WORD = re.compile(r"^[A-ZÅÄÖÉ][a-zåäöéü]+(?:-[A-ZÅÄÖ][a-zåäöéü]+)?$")
# Words that make a signature line a unit's or an organisation's, not a person's.
_ORGANISATION_WORD = re.compile(
    r"kommun|stad|region|kontaktcenter|kundtjänst|kundservice|medborgarservice|"
    r"förvaltning|enhet|avdelning|center|centrum|service|direkt|team|gruppen|"
    r"registrator|kansli|nämnd|skola|bibliotek|kulturskola|support",
    re.IGNORECASE,
)
_LABEL_LINE = re.compile(r"^[ \t]*[\wåäöÅÄÖ \-]{2,30}:[ \t]+\S")
_WORD = re.compile(r"[a-zåäöéü]{5,}")
_COPY_INTRO = re.compile(r"^[ \t]*(?:ditt|din|your)[ \t]+(?:meddelande|fråga|message)[ \t]*:", re.I)
# Words every message about a question shares; they say nothing about its topic.
_GENERIC = frozenset(
    {
        "fråga",
        "frågan",
        "frågor",
        "mejl",
        "mejlet",
        "meddelande",
        "meddelandet",
        "ärende",
        "ärendet",
        "kommun",
        "kommunen",
        "kommuns",
        "svara",
        "svarar",
        "hälsning",
        "hälsningar",
        "vänlig",
        "vänliga",
        "kontakta",
        "kontaktar",
        "kontaktcenter",
        "automatiskt",
        "question",
        "message",
        "thank",
        "regards",
    }
)
_STEM = 5


@dataclass(frozen=True)
class PersonSigns:
    salutation: bool
    sign_off: bool
    about_question: bool

    @property
    def names(self) -> tuple[str, ...]:
        pairs = (
            (self.salutation, "salutation-to-asker"),
            (self.sign_off, "personal-sign-off"),
            (self.about_question, "about-the-question"),
        )
        return tuple(name for present, name in pairs if present)

    @property
    def reads_as_person(self) -> bool:
        return len(self.names) >= 2


def person_signs(new_text: str, question_text: str) -> PersonSigns:
    """The signs of a person in ``new_text``; ``question_text`` is the subject and quote.

    The topic comparison, the costly sign, is made only when it can tip the balance.
    """
    lines = [line for line in new_text.splitlines() if line.strip()]
    salutation = bool(lines) and _names_someone(lines[0])
    sign_off = _signed_by_person(lines)
    about = salutation != sign_off and _about_question(lines, question_text)
    return PersonSigns(salutation=salutation, sign_off=sign_off, about_question=about)


def _names_someone(line: str) -> bool:
    match = _SALUTATION.match(line)
    return match is not None and not _ORGANISATION_WORD.search(match.group("name"))


def _signed_by_person(lines: list[str]) -> bool:
    for at, line in enumerate(lines):
        if _SLASH_NAME.match(line):
            return True
        if _SIGN_OFF.match(line) and at + 1 < len(lines) and _is_person_name(lines[at + 1]):
            return True
    return False


def _is_person_name(line: str) -> bool:
    words = line.strip().rstrip(",.").split()
    if not 1 <= len(words) <= 3 or _ORGANISATION_WORD.search(line):
        return False
    return all(_NAME_WORD.match(word) for word in words)


def _about_question(lines: list[str], question_text: str) -> bool:
    topic = _stems(question_text)
    if not topic:
        return False
    own: set[str] = set()
    for line in lines:
        if _COPY_INTRO.match(line):
            break  # what follows is a copy of the question, not the writer's words
        if not _LABEL_LINE.match(line):
            own |= _stems(line)
    return bool(own & topic)


def _stems(text: str) -> set[str]:
    return {w[:_STEM] for w in _WORD.findall(text.lower()) if w not in _GENERIC}
