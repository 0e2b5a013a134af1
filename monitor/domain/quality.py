"""How well a person answered: the answer-quality rubric for one human reply.

The rubric (``docs``: README, "Answer quality") is judged on the reply's new text only, cut
into salutation, answer body, signature and footer (monitor.domain.reply_parts):

* ``answer``: answered | referred | holding (monitor.domain.answer_kind);
* ``greeting``: the first line is a salutation or a thank-you to the asker;
* ``personal``: the persona's first name addresses the asker, in the salutation or the
  first paragraph;
* ``named_sender``: the signature carries a first and a last name (the From header does
  not count);
* ``sender_unit``: the signature names a unit, department, facility or role; the name of
  the municipality alone does not count;
* ``contact_details``: a phone number or a reply-able e-mail address (not noreply)
  anywhere in the new text: body, signature or footer;
* ``more_info``: a web link (http://, https://, www.) in the answer body; links in the
  signature or a footer and bare domains ("mora.se") do not count;
* ``lix``: LIX of the answer body (monitor.domain.lix), with its band.

``score`` is 0–100, the sum of the weights below for the items met. Every item adds one
reason code to ``reasons``, naming what decided it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from monitor.domain.answer_kind import answer_kind
from monitor.domain.lix import LixBand, band, lix
from monitor.domain.mailparse import html_to_text
from monitor.domain.model import AnswerKind, MessageKind, ParsedMessage
from monitor.domain.newtext import reply_text
from monitor.domain.reply_parts import (
    EMAIL,
    PHONE,
    URL,
    ReplyParts,
    SignaturePart,
    judge_part,
    signature_parts,
    split_reply,
)

__all__ = ["AnswerKind", "AnswerQuality", "LixBand", "assess_answer", "first_name_of"]

# Score weights (sum 100). The answer itself weighs most: a referral is worth a little
# (a person replied and pointed the way), a holding reply nothing. KKiK's mystery contacts
# score who signs and whether more information is given; SKR's Servicemätning asks for a
# clear, individual answer; Språklagen asks for plain Swedish (LIX).
WEIGHT_ANSWERED = 40
WEIGHT_REFERRED = 10
WEIGHT_HOLDING = 0
WEIGHT_GREETING = 5
WEIGHT_PERSONAL = 10
WEIGHT_NAMED_SENDER = 10
WEIGHT_SENDER_UNIT = 5
WEIGHT_CONTACT_DETAILS = 10
WEIGHT_MORE_INFO = 10
# Readability: full weight up to "lättläst" (LIX < 40), less for each harder band.
WEIGHT_READABILITY: Mapping[LixBand, int] = {
    LixBand.VERY_EASY: 10,
    LixBand.EASY: 10,
    LixBand.MEDIUM: 6,
    LixBand.HARD: 3,
    LixBand.VERY_HARD: 0,
}
_ANSWER_WEIGHTS: Mapping[AnswerKind, int] = {
    AnswerKind.ANSWERED: WEIGHT_ANSWERED,
    AnswerKind.REFERRED: WEIGHT_REFERRED,
    AnswerKind.HOLDING: WEIGHT_HOLDING,
}

_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|noreply|no_reply|donotreply)", re.I)
_FOLD = str.maketrans("åäöéèüæø", "aaoeeuao")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_LOCAL_PART_SPLIT = re.compile(r"[._+\-]+")
_MIN_HINT = 4
_GENERIC_MAILBOX = re.compile(r"kommun|stad|region|info|post|registrator|noreply|no-?reply")


@dataclass(frozen=True)
class AnswerQuality:
    """The rubric's verdict on one human reply; see the module docstring."""

    answer: AnswerKind
    greeting: bool
    personal: bool
    named_sender: bool
    sender_unit: bool
    contact_details: bool
    more_info: bool
    lix: float
    band: LixBand
    score: int
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """The verdict as JSON values, with exactly the rubric's field names."""
        return {
            "answer": self.answer.value,
            "greeting": self.greeting,
            "personal": self.personal,
            "named_sender": self.named_sender,
            "sender_unit": self.sender_unit,
            "contact_details": self.contact_details,
            "more_info": self.more_info,
            "lix": self.lix,
            "band": self.band.value,
            "score": self.score,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class _Item:
    value: bool
    reason: str


def first_name_of(persona_name: str) -> str:
    """The first name of a persona's name as it signs probes ("Anna-Karin Berglund")."""
    words = persona_name.split()
    return words[0] if words else ""


def assess_answer(
    message: ParsedMessage | str,
    *,
    kind: MessageKind,
    has_new_text: bool,
    question: str = "",
    first_name: str = "",
) -> AnswerQuality | None:
    """The rubric for a human reply with new text; None for every other message.

    ``message`` is the parsed mail (or its text), ``question`` the probe's body as sent and
    ``first_name`` the persona's first name (see ``first_name_of``).
    """
    if kind is not MessageKind.HUMAN or not has_new_text:
        return None
    parts = split_reply(reply_text(_text_of(message), question or None))
    answer, answer_reason = answer_kind(parts.body_text, _question_body(question))
    value = lix(parts.body_text)
    signature = _signature_kinds(parts, _mailbox_hints(message))
    items = _Items(
        greeting=_greeting(parts),
        personal=_personal(parts, first_name),
        named_sender=_named_sender(parts, signature),
        sender_unit=_sender_unit(signature),
        contact_details=_contact_details(parts),
        more_info=_more_info(parts),
    )
    return AnswerQuality(
        answer=answer,
        greeting=items.greeting.value,
        personal=items.personal.value,
        named_sender=items.named_sender.value,
        sender_unit=items.sender_unit.value,
        contact_details=items.contact_details.value,
        more_info=items.more_info.value,
        lix=value,
        band=band(value),
        score=score(answer, items.flags(), band(value)),
        reasons=(answer_reason, *items.reasons(), f"lix-{band(value).value}"),
    )


@dataclass(frozen=True)
class _Items:
    greeting: _Item
    personal: _Item
    named_sender: _Item
    sender_unit: _Item
    contact_details: _Item
    more_info: _Item

    def _all(self) -> tuple[_Item, ...]:
        return (
            self.greeting,
            self.personal,
            self.named_sender,
            self.sender_unit,
            self.contact_details,
            self.more_info,
        )

    def flags(self) -> tuple[bool, ...]:
        return tuple(item.value for item in self._all())

    def reasons(self) -> tuple[str, ...]:
        return tuple(item.reason for item in self._all())


_ITEM_WEIGHTS = (
    WEIGHT_GREETING,
    WEIGHT_PERSONAL,
    WEIGHT_NAMED_SENDER,
    WEIGHT_SENDER_UNIT,
    WEIGHT_CONTACT_DETAILS,
    WEIGHT_MORE_INFO,
)


def score(answer: AnswerKind, flags: Sequence[bool], lix_band: LixBand) -> int:
    """0–100: the answer's weight, each item met (greeting, personal, named sender, unit,
    contact details, more info, in that order) and the readability weight of the band."""
    met = sum(weight for weight, flag in zip(_ITEM_WEIGHTS, flags, strict=True) if flag)
    return _ANSWER_WEIGHTS[answer] + met + WEIGHT_READABILITY[lix_band]


@lru_cache(maxsize=256)
def _question_body(question: str) -> str:
    """The probe's question without its salutation and signature (the persona's name)."""
    return split_reply(question).body_text if question else ""


def _text_of(message: ParsedMessage | str) -> str:
    if isinstance(message, str):
        return message
    if message.text_from_html and message.html is not None:
        return html_to_text(message.html, with_links=True)  # links count, so keep them
    return message.text


# --- items -----------------------------------------------------------------------------


def _greeting(parts: ReplyParts) -> _Item:
    if parts.salutation is None:
        return _Item(False, "no-greeting")
    thanks = parts.salutation.casefold().lstrip().startswith(("tack", "stort tack", "varmt"))
    return _Item(True, "thank-you-opening" if thanks else "salutation")


def _names(text: str, first_name: str) -> bool:
    name = re.escape(unicodedata.normalize("NFC", first_name.strip()))
    return bool(name) and bool(re.search(rf"(?<![\w-]){name}(?![\w]|-\w)", text, re.I))


def _personal(parts: ReplyParts, first_name: str) -> _Item:
    if parts.salutation is not None and _names(parts.salutation, first_name):
        return _Item(True, "first-name-in-salutation")
    if _names(_first_paragraph(parts.body), first_name):
        return _Item(True, "first-name-in-text")
    return _Item(False, "no-first-name")


def _first_paragraph(lines: Sequence[str]) -> str:
    paragraph: list[str] = []
    for line in lines:
        if not line.strip() and paragraph:
            break
        paragraph.append(line)
    return " ".join(paragraph)


def _mailbox_hints(message: ParsedMessage | str) -> tuple[str, ...]:
    """Words of a functional mailbox's address ("simarena@", "bygglov@"): a signature line
    that carries one names the unit behind the mailbox, not a person."""
    if isinstance(message, str) or not message.from_address:
        return ()
    if message.from_name and judge_part(message.from_name) is SignaturePart.NAME:
        return ()
    local = message.from_address.split("@", 1)[0]
    pieces = (_fold(piece) for piece in _LOCAL_PART_SPLIT.split(local))
    return tuple(p for p in pieces if len(p) >= _MIN_HINT and not _GENERIC_MAILBOX.search(p))


def _fold(text: str) -> str:
    return _NOT_ALNUM.sub("", text.casefold().translate(_FOLD))


def _signature_kinds(parts: ReplyParts, hints: Sequence[str]) -> list[SignaturePart]:
    kinds: list[SignaturePart] = []
    for line in parts.signature:
        for part in signature_parts(line):
            kind = judge_part(part)
            if kind in _NAME_LIKE and any(hint in _fold(part) for hint in hints):
                kind = SignaturePart.UNIT
            kinds.append(kind)
    return kinds


_NAME_LIKE = frozenset({SignaturePart.NAME, SignaturePart.FIRST_NAME, SignaturePart.PHRASE})


def _named_sender(parts: ReplyParts, kinds: Sequence[SignaturePart]) -> _Item:
    if SignaturePart.NAME in kinds:
        return _Item(True, "sign-off-name")
    if SignaturePart.FIRST_NAME in kinds:
        return _Item(False, "first-name-only")
    if not parts.signature:
        return _Item(False, "no-signature")
    if SignaturePart.UNIT in kinds or SignaturePart.PHRASE in kinds:
        return _Item(False, "unit-only-signature")
    return _Item(False, "no-name-in-signature")


def _sender_unit(kinds: Sequence[SignaturePart]) -> _Item:
    if SignaturePart.UNIT in kinds or SignaturePart.PHRASE in kinds:
        return _Item(True, "signature-unit")
    if SignaturePart.MUNICIPALITY in kinds:
        return _Item(False, "municipality-only")
    return _Item(False, "no-unit")


def _reply_able(addresses: Iterable[str]) -> bool:
    return any(not _NOREPLY.match(address) for address in addresses)


def _contact_details(parts: ReplyParts) -> _Item:
    places = (("body", parts.body), ("signature", parts.signature), ("footer", parts.footer))
    noreply = False
    for place, lines in places:
        text = "\n".join(lines)
        if PHONE.search(text):
            return _Item(True, f"phone-in-{place}")
        addresses = EMAIL.findall(text)
        if _reply_able(addresses):
            return _Item(True, f"address-in-{place}")
        noreply = noreply or bool(addresses)
    return _Item(False, "noreply-ignored" if noreply else "no-contact")


_BARE_DOMAIN_IN_TEXT = re.compile(r"\b[\w\-]+\.(?:se|nu|com|org|net|eu)\b", re.I)


def _more_info(parts: ReplyParts) -> _Item:
    body = parts.body_text
    if URL.search(body):
        return _Item(True, "body-link")
    if URL.search("\n".join(parts.footer)):
        return _Item(False, "footer-link-ignored")
    if URL.search("\n".join(parts.signature)):
        return _Item(False, "signature-link-ignored")
    without_addresses = EMAIL.sub(" ", body)
    if _BARE_DOMAIN_IN_TEXT.search(without_addresses):
        return _Item(False, "bare-domain-ignored")
    return _Item(False, "no-link")
