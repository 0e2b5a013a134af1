"""Wording that marks a mail as automatic, Swedish first, then English (and a few others).

Patterns are compiled once; each is written for the words real systems use, never for a
single sample. Matching is case-insensitive on text that has been whitespace-normalised.
"""

from __future__ import annotations

import re

_I = re.IGNORECASE
_ESCAPE = re.compile(r"\\.")


class Wording:
    """A case-insensitive wording pattern, written in lower case, searched in lowered text.

    Under re.IGNORECASE Python's re gives up its literal scans: lowering the text once and
    matching case-sensitively made these searches about seven times faster on the bounce
    corpus (same results). Used for long texts; short subjects keep re.IGNORECASE.
    """

    __slots__ = ("_regex",)

    def __init__(self, pattern: str) -> None:
        if _ESCAPE.sub("", pattern).lower() != _ESCAPE.sub("", pattern):
            raise ValueError(f"a Wording pattern must be lower case: {pattern[:60]}")
        self._regex = re.compile(pattern)

    @property
    def pattern(self) -> str:
        return self._regex.pattern

    def search(self, text: str) -> re.Match[str] | None:
        """A match in ``text.lower()`` (positions refer to the lowered text)."""
        return self._regex.search(text.lower())


# Subject prefixes of replies written by people (RFC 5322 3.6.5 "Re:" and its locales).
REPLY_PREFIX = re.compile(r"^\s*(?:re|sv|aw|vs|antw|ynt|odp|res|r|vb|fw|fwd|wg|tr)\s*:", _I)

# Subjects that automatic responders put in front of (or instead of) the original subject.
AUTO_SUBJECT = re.compile(
    r"^\s*(?:(?:re|sv)\s*:\s*)?(?:automatiskt\s+svar|automatic\s+reply|autosvar|auto\s*:|"
    r"auto[- ]?reply|auto[- ]?response|autoresponse|frånvaro(?:meddelande)?|"
    r"out\s+of\s+(?:the\s+)?office|abwesenheitsnotiz|abwesend|r[ée]ponse\s+automatique|"
    r"automatisch(?:es)?\s+antwort|vacation|on\s+vacation|semester(?:svar)?\s*:|"
    r"ledig\s+(?:till|t\.o\.m|tom|från)|away\s+from)",
    _I,
)

# Subjects of MDNs and Outlook read receipts (RFC 8098 and Exchange locales).
READ_RECEIPT_SUBJECT = re.compile(
    r"^\s*(?:läst|read|ej\s+läst|not\s+read|gelesen|lu|gelezen|luettu|lest|return\s+receipt"
    r"|read\s+receipt|läskvitto|läsbekräftelse|disposition\s+notification)\b\s*[:(-]",
    _I,
)

# A sentence saying the message itself is automatic or cannot be answered.
AUTO_STATEMENT = Wording(
    r"(?:det\s+här|detta)\s+(?:är\s+ett\s+)?(?:mejl|meddelande|e-?postmeddelande|svar)?\s*"
    r"(?:är\s+)?(?:ett\s+)?automatiskt(?:\s+genererat)?\s*(?:svar|meddelande|mejl|utskick)?|"
    r"automatiskt\s+(?:svar|genererat|utskick|meddelande)|"
    r"går\s+inte\s+att\s+svara\s+på|kan\s+inte\s+besvaras|svara\s+inte\s+på\s+(?:det\s+här|detta)|"
    r"du\s+behöver\s+inte\s+(?:svara|skicka\s+din\s+fråga\s+igen)|"
    r"this\s+is\s+an\s+automat(?:ed|ic(?:ally\s+generated)?)\s+(?:reply|response|message|e-?mail)|"
    r"(?:please\s+)?do\s+not\s+reply\s+to\s+this|this\s+(?:mailbox|address)\s+is\s+not\s+monitored|"
    r"auto(?:matic)?[- ]?(?:reply|response)\b",
)

# Out-of-office and absence wording.
ABSENCE = Wording(
    r"\bjag\s+(?:är|har)\s+(?:\w+\s+){0,2}(?:ledig|semester|föräldraledig|tjänstledig|"
    r"sjukskriven|frånvarande|bortrest|på\s+(?:semester|utbildning|konferens|tjänsteresa|"
    r"kurs))|\b(?:är|kommer)\s+(?:åter|tillbaka)\s+(?:i\s+tjänst\s+|på\s+kontoret\s+)?"
    r"(?:den|på|måndag|tisdag|onsdag|torsdag|fredag|v\.|vecka|\d)|"
    r"\bläser\s+inte\s+(?:min\s+)?e-?post|begränsad\s+tillgång\s+till\s+(?:min\s+)?e-?post|"
    r"\bi\s*(?:am|'m|will\s+be)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|on\s+"
    r"(?:annual\s+|parental\s+|sick\s+)?leave|on\s+vacation|on\s+holiday|away|attending)|"
    r"\bout\s+of\s+(?:the\s+)?office\b|\blimited\s+access\s+to\s+(?:my\s+)?e-?mail|"
    r"\bwill\s+(?:be\s+)?back\s+(?:on|in|at)\b",
)

# Acknowledgement: "we have your mail and will answer within ...".
ACK_PROMISE = Wording(
    r"\b(?:vi|den|din\s+fråga)\s+(?:\w+\s+){0,3}(?:besvara[rs]?|svarar|återkommer|"
    r"kommer\s+att\s+besvaras|hanteras)\b[^.!?\n]{0,80}\b(?:inom|så\s+snart|snarast|senast)|"
    r"\bvi\s+har\s+tagit\s+emot\s+(?:ditt|din|er)\b|\bvi\s+har\s+(?:fått|mottagit)\s+ditt\s+"
    r"(?:mejl|meddelande|e-?postmeddelande)|"
    r"\b(?:we\s+have\s+received|thank\s+you\s+for\s+(?:your\s+)?(?:e-?mail|message|contacting))"
    r"[^.!?\n]{0,120}\b(?:within|as\s+soon\s+as|shortly|get\s+back)|"
    r"\bwe\s+(?:will|'ll)\s+(?:answer|reply|respond|get\s+back)[^.!?\n]{0,60}\b(?:within|as\s+soon)",
)

# A case, diary or ticket has been registered for the message.
RECEIPT = Wording(
    r"\bregistrera(?:t|ts|d)\b[^.!?\n]{0,40}\b(?:som|med|i)\s+(?:ärende|nummer|diariet|"
    r"ärendenummer)|\b(?:har|blivit)\s+registrerats\b|\bhar\s+diarieförts\b|"
    r"\b(?:ärende(?:t)?|anmälan|förfrågan|fråga)\s+(?:\(#?[\w-]+\)\s+)?har\s+(?:fått|tagits\s+emot|"
    r"registrerats)|\bhar\s+fått\s+(?:ärende-?id|ärendenummer|diarienummer|nummer)\b|"
    r"\bdet\s+har\s+fått\s+ärende|\bregistrerats\s+i\s+diariet|\bkvittens\b|"
    r"\b(?:ticket|case|request|incident)\s+(?:#?\s*[\w-]+\s+)?has\s+been\s+(?:created|opened|"
    r"logged|received|registered)|\byour\s+(?:request|ticket|case)\s+(?:\(#?[\w-]+\)\s+)?has\s+"
    r"been\s+received|\bwe\s+have\s+(?:created|opened|logged)\s+(?:a\s+)?(?:ticket|case)",
)
RECEIPT_SUBJECT = re.compile(
    r"\b(?:mottage[nt]|registrerad|registrerat|har\s+tagits\s+emot|kvittens|diarieförts|"
    r"received|ticket\s+created|case\s+created)\b",
    _I,
)

# Case, diary and ticket numbers: a keyword, then an id with at least three digits.
_TICKET_ID = r"(?P<id>(?-i:[A-ZÅÄÖ]{2,5}\s)?[A-Za-z]{0,5}-?\d[\w]*(?:[-/][\w]+)*)"
TICKET_IN_TAG = re.compile(
    r"\[\s*(?:ärende(?:-?id|nummer|nr)?|ticket|case|incident|ref|dnr)?\s*[:#]?\s*#?\s*"
    + _TICKET_ID
    + r"\s*\]",
    _I,
)
TICKET_AFTER_KEYWORD = re.compile(
    r"\b(?:ärende(?:nummer|nr|-?id(?::t)?|t)?|diarienummer|dnr|referensnummer|"
    r"ticket(?:\s*(?:number|no\.?|id))?|case(?:\s*(?:number|id))?|incident|anmälan|förfrågan|"
    r"nummer)\b[\s:#(]*#?\s*" + _TICKET_ID,
    _I,
)
