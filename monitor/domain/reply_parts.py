"""A reply's new text cut into its parts: salutation, answer body, signature, footer.

The answer-quality rubric judges each part on its own: the greeting on the first line, links
and readability in the body, who signs in the signature, and nothing but contact details in
a footer (a GDPR notice, "Följ oss på Facebook", a switchboard line, a case system's notice).

* The salutation is the first line when it opens with one ("Hej Eva!", "God dag!", "Tack för
  ditt mejl!"); when content follows on the same line only the salutation phrase is cut.
* The signature starts at the first sign-off ("Med vänlig hälsning", "Mvh", "Hälsningar",
  "/Anna", "--"). Without one, a trailing run of short lines that read as a name, unit, role
  or contact details is the signature.
* Footers are bare rule lines and what follows them, and paragraphs or lines that read as a
  notice: privacy and confidentiality wording, social media, lines built with "|", long
  sentences after the signature.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

_SALUTATION = re.compile(
    r"^\s*(?:hej(?:san| hej)?|hallå|hejhej|tjena|god\s+(?:dag|morgon|middag|eftermiddag|kväll)"
    r"|goddag|godmorgon|(?:stort\s+|varmt\s+)?tack(?:\s+så\s+mycket)?\s+för\b[^.!?\n]*"
    r"|(?:bästa|kära)(?=\s+(?-i:[A-ZÅÄÖÉ]))|hi|hello|dear)\b",
    re.IGNORECASE,
)
# The salutation phrase of a first line that goes on with content: up to its first mark.
_SALUTATION_PHRASE = re.compile(r"^[^.!?,:;–—]*[.!?,:;–—]+\s*")
_SALUTATION_ONLY_WORDS = 6
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:med\s+)?(?:vänlig|vänliga|bästa|varma|varmaste|många|hjärtliga|soliga)"
    r"\s+hälsning(?:ar)?|m\.?v\.?h\.?|hälsningar|hälsning|vänligen|allt\s+gott"
    r"|(?:best|kind|warm)\s+regards|regards|sincerely)\b[\s,.!]*",
    re.IGNORECASE,
)
_SIGN_OFF_WORDS = 6
_SLASH_SIGN = re.compile(r"^\s*/{1,2}\s*(?=\w)")
_SIG_DASHES = re.compile(r"^\s*--\s*$")
_RULE = re.compile(r"^\s*(?:_{5,}|-{5,}|={5,}|\*{5,})\s*$")
_NOTICE = re.compile(
    r"personuppgift|dataskydd|gdpr|sekretess|konfidentiell|confidential|disclaimer"
    r"|följ oss|facebook|instagram|linkedin|twitter|youtube|tiktok"
    r"|(?:detta|det här) (?:e-?post)?meddelande|går inte att svara på|svara inte på"
    r"|mina sidor|skriv ut|tänk på miljön"
)
_END_MARK = re.compile(r"[.!?:]\s*$")
_SIGNATURE_LINE_WORDS = 7
_FOOTER_LINE_WORDS = 12
_WORD = re.compile(r"[^\W\d_]+")
PHONE = re.compile(
    r"(?<![\w+\-–])(?:\+46[\s\-–]*(?:\(0\)[\s\-–]*)?|0)[1-9](?:(?:\s?[\-–]\s?|\s)?\d){6,8}"
    r"(?!\d)"
)
EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyParts:
    """The parts of a reply's new text, each as lines (blank lines kept inside a part)."""

    salutation: str | None
    body: tuple[str, ...]
    signature: tuple[str, ...]
    footer: tuple[str, ...]
    sign_off: str | None  # the sign-off line that opened the signature, if any

    @property
    def body_text(self) -> str:
        return "\n".join(self.body).strip("\n")


def split_reply(new_text: str) -> ReplyParts:
    """Cut a reply's new text (quote already removed, signature kept) into its parts."""
    lines = [line.rstrip() for line in new_text.replace("\r\n", "\n").split("\n")]
    lines, footer = _split_rule_footer(lines)
    salutation, lines = _split_salutation(lines)
    body, signature, sign_off = _split_signature(lines)
    body, body_footer = _split_trailing_notices(body)
    signature, signature_footer = _split_signature_footer(signature)
    return ReplyParts(
        salutation=salutation,
        body=tuple(_trimmed(body)),
        signature=tuple(_trimmed(signature)),
        footer=tuple(_trimmed([*body_footer, *signature_footer, *footer])),
        sign_off=sign_off,
    )


def _trimmed(lines: Sequence[str]) -> list[str]:
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return list(lines[start:end])


def _split_rule_footer(lines: list[str]) -> tuple[list[str], list[str]]:
    """A rule line with text under it (a case system's notice) starts a footer."""
    for index, line in enumerate(lines):
        if _RULE.match(line) and any(rest.strip() for rest in lines[index + 1 :]):
            return lines[:index], lines[index + 1 :]
    return lines, []


def is_salutation(line: str) -> bool:
    return bool(_SALUTATION.match(line))


def _split_salutation(lines: list[str]) -> tuple[str | None, list[str]]:
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or not is_salutation(lines[first]):
        return None, lines
    line = lines[first].strip()
    if len(line.split()) <= _SALUTATION_ONLY_WORDS or not _SALUTATION_PHRASE.match(line):
        return line, lines[first + 1 :]
    phrase = _SALUTATION_PHRASE.match(line)
    assert phrase is not None
    rest = line[phrase.end() :]
    return phrase.group(0).strip(), [rest, *lines[first + 1 :]]


def sign_off_at(line: str) -> re.Match[str] | None:
    """The sign-off that opens a signature on this line, if the line is one."""
    if _SIG_DASHES.match(line):
        return re.match(r"\s*--\s*", line)
    slash = _SLASH_SIGN.match(line)
    if slash and len(line.split()) <= _SIGNATURE_LINE_WORDS:
        return slash
    match = _SIGN_OFF.match(line)
    if match is None or len(line.split()) > _SIGN_OFF_WORDS:
        return None
    return match


def _split_signature(lines: list[str]) -> tuple[list[str], list[str], str | None]:
    for index, line in enumerate(lines):
        match = sign_off_at(line)
        if match is not None:
            rest = line[match.end() :].strip(" ,")
            signature = [rest, *lines[index + 1 :]] if rest else lines[index + 1 :]
            return lines[:index], signature, line.strip()
    body, signature = _split_unsigned_tail(lines)
    return body, signature, None


def _split_unsigned_tail(lines: list[str]) -> tuple[list[str], list[str]]:
    """Without a sign-off: the trailing short lines after the last sentence, if they sign."""
    content, notices = _split_trailing_notices(lines)
    start = len(content)
    while start > 0 and _could_sign(content[start - 1]):
        start -= 1
    tail = [line for line in content[start:] if line.strip()]
    if not tail or start == 0 or not any(signs(line) for line in tail):
        return lines, []
    return content[:start], [*content[start:], *notices]


def _could_sign(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return True
    return len(stripped.split()) <= _SIGNATURE_LINE_WORDS and not _END_MARK.search(stripped)


def _is_notice(text: str) -> bool:
    """Privacy, social-media or system wording, or an "a | b | c" line that names no one."""
    if _NOTICE.search(text.casefold()):  # the pattern is written in lower case
        return True
    return "|" in text and SignaturePart.NAME not in {
        judge_part(part) for part in signature_parts(text)
    }


def _paragraph_starts(lines: Sequence[str]) -> list[int]:
    return [
        i for i, line in enumerate(lines) if line.strip() and (i == 0 or not lines[i - 1].strip())
    ]


def _split_trailing_notices(lines: list[str]) -> tuple[list[str], list[str]]:
    """Trailing paragraphs that read as a notice (privacy, social media, "a | b" lines)."""
    end = len(lines)
    for start in reversed(_paragraph_starts(lines)):
        paragraph = " ".join(lines[start:end])
        if not _is_notice(paragraph):
            break
        end = start
    return lines[:end], lines[end:]


def _split_signature_footer(lines: list[str]) -> tuple[list[str], list[str]]:
    """The signature ends at the first notice line or long sentence."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        long_sentence = len(stripped.split()) > _FOOTER_LINE_WORDS
        if stripped and (_is_notice(stripped) or long_sentence):
            return lines[:index], lines[index:]
    return lines, []


# --- signature lines -------------------------------------------------------------------


class SignaturePart(StrEnum):
    NAME = "name"  # a person's first and last name
    FIRST_NAME = "first_name"  # one capitalised word that names no unit
    UNIT = "unit"  # a unit, department, facility or role
    PHRASE = "phrase"  # a capitalised phrase that is no name ("Gator och parker")
    MUNICIPALITY = "municipality"  # the municipality alone ("Mora kommun")
    CONTACT = "contact"  # a phone number or an e-mail address
    LINK = "link"  # a web address or a bare domain
    OTHER = "other"


_PART_SEPARATOR = re.compile(r"\s*(?:,|\s\|\s|\s[–—-]\s|\t)\s*")
_CONTACT_LABEL = re.compile(
    r"^(?:tel(?:efon)?|tfn|mobil|mob|direkt|växel|vxl|e-?post|e-?mail|mejl|mail|fax)\b[.:]?",
    re.IGNORECASE,
)
_BARE_DOMAIN = re.compile(r"^[\w\-]+(?:\.[\w\-]+)*\.(?:se|nu|com|org|net|eu)/?\S*$", re.I)
_MUNICIPALITY = re.compile(
    r"^(?:[\w\-]+\s+){0,2}(?:kommun|kommunen|stad|staden|stads?kommun)$|^region\s+[\w\-]+$",
    re.IGNORECASE,
)
# Words that end a unit, facility or role name ("Bygglovsenheten", "Borås Simarena",
# "Kostchef", "Skolskjutshandläggare") -- never the end of a person's name.
_UNIT_ENDINGS = (
    "enhet",
    "enheten",
    "förvaltning",
    "förvaltningen",
    "kontor",
    "kontoret",
    "center",
    "centret",
    "centrum",
    "tjänst",
    "tjänsten",
    "service",
    "bibliotek",
    "biblioteket",
    "skola",
    "skolan",
    "avdelning",
    "avdelningen",
    "sektion",
    "sektionen",
    "nämnd",
    "nämnden",
    "grupp",
    "gruppen",
    "team",
    "teamet",
    "byrå",
    "byrån",
    "arena",
    "arenan",
    "simhall",
    "sporthall",
    "ishall",
    "idrottshall",
    "hallen",
    "badet",
    "reception",
    "receptionen",
    "expedition",
    "expeditionen",
    "kansli",
    "kansliet",
    "funktion",
    "funktionen",
    "verksamhet",
    "verksamheten",
    "ningen",
    "gården",
    "museum",
    "museet",
    "teater",
    "teatern",
    "huset",
    "växel",
    "växeln",
    "support",
    "handläggare",
    "handläggarna",
    "chef",
    "inspektör",
    "ingenjör",
    "sekreterare",
    "assistent",
    "rådgivare",
    "vägledare",
    "samordnare",
    "strateg",
    "utvecklare",
    "ansvarig",
    "ombud",
    "ekonom",
    "arkitekt",
    "tekniker",
    "planerare",
    "förvaltare",
    "ledare",
    "kurator",
    "rektor",
    "bibliotekarie",
    "administratör",
    "koordinator",
    "medarbetare",
    "registrator",
    "jurist",
    "värd",
    "mottagning",
    "mottagningen",
    "kundtjänst",
    "kontaktcenter",
    "medborgarservice",
)
# Topic words that start unit names written as one word ("Bygglov", "Miljö och hälsa");
# only applied to a lone word, where a first name is the other reading.
_UNIT_STARTS = (
    "bygg",
    "miljö",
    "vård",
    "omsorg",
    "social",
    "kultur",
    "fritid",
    "teknik",
    "gatu",
    "park",
    "vatten",
    "avfall",
    "renhåll",
    "kontakt",
    "kund",
    "ekonomi",
    "lön",
    "personal",
    "plan",
    "trafik",
    "parkering",
    "stadsbyggnad",
    "samhällsbyggnad",
    "kommunikation",
    "utbildning",
    "förskol",
    "skol",
    "bostad",
    "näringsliv",
    "turism",
    "boknin",
    "registratur",
    "diarium",
    "kommun",
)
_NAME_PARTICLES = frozenset({"af", "av", "von", "van", "de", "der", "la", "di", "da", "el", "al"})
_NAME_WORD = re.compile(
    r"^[A-ZÅÄÖÉÈÜÆØ][a-zåäöéèüæøáíóúñç'’]+(?:-[A-ZÅÄÖÉÈÜÆØ][a-zåäöéèüæøáíóúñç'’]+)?$"
)
_NOT_NAMES = frozenset(
    {
        "tack",
        "välkommen",
        "välkomna",
        "hej",
        "hälsningar",
        "telefon",
        "mobil",
        "skickat",
        "kommun",
        "stad",
        "sverige",
        "sweden",
    }
)
_MAX_NAME_WORDS = 4


def signature_parts(line: str) -> list[str]:
    """A signature line split at commas, " | " and dashes ("Bokningen, Kulturförvaltningen")."""
    stripped = line.strip().lstrip("/").strip()
    return [part for part in _PART_SEPARATOR.split(stripped) if part.strip()]


def judge_part(part: str) -> SignaturePart:
    """What one piece of a signature line is."""
    text = part.strip().strip(".:;")
    kind = _contact_or_link(text)
    if kind is not None:
        return kind
    if not _WORD.search(text):
        return SignaturePart.OTHER
    if _MUNICIPALITY.match(text):
        return SignaturePart.MUNICIPALITY
    if _names_unit(text):
        return SignaturePart.UNIT
    return _name_or_other(text)


def _contact_or_link(text: str) -> SignaturePart | None:
    if PHONE.search(text) or EMAIL.search(text) or _CONTACT_LABEL.match(text):
        return SignaturePart.CONTACT
    if URL.search(text) or _BARE_DOMAIN.match(text):
        return SignaturePart.LINK
    return None


def _names_unit(text: str) -> bool:
    words = [word.casefold() for word in _WORD.findall(text)]
    if any(word.endswith(_UNIT_ENDINGS) for word in words):
        return True
    return len(words) == 1 and words[0].startswith(_UNIT_STARTS)


def _name_or_other(text: str) -> SignaturePart:
    words = text.split()
    if any(word.casefold() in _NOT_NAMES for word in words):
        return SignaturePart.OTHER
    names = [word for word in words if word.casefold() not in _NAME_PARTICLES]
    if not names or len(words) > _MAX_NAME_WORDS:
        return SignaturePart.PHRASE if _is_unit_phrase(words) else SignaturePart.OTHER
    if all(_NAME_WORD.match(word) for word in names):
        return SignaturePart.FIRST_NAME if len(names) == 1 else SignaturePart.NAME
    return SignaturePart.PHRASE if _is_unit_phrase(words) else SignaturePart.OTHER


def _is_unit_phrase(words: Sequence[str]) -> bool:
    """A capitalised phrase of a few words that is no name ("Gator och parker")."""
    return bool(words) and words[0][:1].isupper() and len(words) <= _SIGNATURE_LINE_WORDS


_SIGNING_PARTS = frozenset(
    {
        SignaturePart.NAME,
        SignaturePart.FIRST_NAME,
        SignaturePart.UNIT,
        SignaturePart.MUNICIPALITY,
        SignaturePart.CONTACT,
    }
)


def signs(line: str) -> bool:
    """A line that reads as part of a signature: contact details, a unit, a role or a name."""
    return any(judge_part(part) in _SIGNING_PARTS for part in signature_parts(line))
