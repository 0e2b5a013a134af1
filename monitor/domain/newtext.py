"""What a person actually wrote in a reply: the text minus quoted original, signature and
disclaimer.

A reply counts as an answer only when it carries new text (issue 3). Mail clients mark
the start of the quoted original in many ways; every one recognised here starts a quote
that runs to the end of the message (top posting), except "> " quoting, between whose
blocks a person may write inline answers (interleaved and bottom posting), which are kept.
Outlook-style quotes carry no "> ", so inline answers inside them are found by comparing
the quote with the probe's own text when the caller passes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from monitor.domain.model import ParsedMessage

# Outlook's header block: a "From:" line followed within a few lines by "Sent:"/"Date:"
# and "To:"/"Subject:" (Swedish, English, Outlook for Mac "Datum:"; German, Norwegian,
# Danish and Finnish desktop clients use the same layout).
_FROM = re.compile(r"^\**\s*(från|from|von|fra|lähettäjä|de|van)\s*:\**\s*\S", re.IGNORECASE)
_HEADER_FIELD = re.compile(
    r"^\**\s*(skickat|sent|datum|date|gesendet|sendt|lähetetty|envoyé|"
    r"till|to|an|til|vastaanottaja|à|"
    r"ämne|subject|betreff|emne|aihe|objet|"
    r"kopia|cc|kopie|"
    r"svara till|reply-to|prioritet|importance|bifogade filer|attachments)\s*:",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:ursprungligt meddelande|original message|ursprüngliche nachricht|"
    r"opprinnelig melding|oprindelig meddelelse|vidarebefordrat meddelande|"
    r"forwarded message|message d'origine)\s*-{2,}|_{10,}|-{10,}|={10,})\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*(?:_{10,}|-{10,}|={10,})\s*$")
# Attribution lines: Gmail "Den tors 22 maj 2025 kl 10:10 skrev Namn <adr>:", Apple Mail
# "26 maj 2025 kl. 09:35 skrev Namn <adr>:", Thunderbird "Den 2025-02-10 kl. 13:05, skrev
# Namn:", English "On … wrote:". Gmail wraps long ones over two lines.
_ATTRIBUTION = re.compile(
    r"(\bskrev\b|\bwrote\b|\bschrieb\b|\bskrev følgende\b|\ba écrit\b).{0,120}:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^\s*(den|on|am|le|\d{1,2}\s+\w+\.?\s+\d{4}|\d{4}-\d{2}-\d{2}|\w{2,4}\s+\d{1,2}\s+\w+)\b",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(med\s+)?(vänlig[a]?\s+hälsning(ar)?|bästa\s+hälsningar|hälsningar|hälsning|"
    r"mvh|m\.v\.h\.?|vänligen|"
    r"best\s+regards|kind\s+regards|regards|sincerely|cheers|"
    r"mit\s+freundlichen\s+grüßen)[\s,.!]*$",
    re.IGNORECASE,
)
# "Skickat från min iPhone", "Skickat från Outlook för iOS", "Sent from Mail for Windows".
_SENT_FROM_DEVICE = re.compile(
    r"^\s*(skickat|skickad|sänt|sent|get)\s+(från|from|via)(\s+\S+){1,5}\s*$", re.IGNORECASE
)
_SIG_DASHES = re.compile(r"^--\s*$")
# Notice openings only: "När du skickar in ansökan…" or "Information om hur du ansöker…"
# are answers and must survive.
_DISCLAIMER_START = re.compile(
    r"^\s*(behandling av personuppgifter|"
    r"när du (skickar e-?post|skickar (ett )?(e-?postmeddelande|e-?brev|mejl|mail)|"
    r"mejlar|e-?postar|kontaktar) (till )?(oss|\w+s (kommun|stad|region))|"
    r"(detta|det här) e-?(post)?meddelande(t)? (kan|är|och|innehåller|har skickats)|"
    r"denna e-?post (kan|är|och|innehåller)|"
    r"information om (hur \w+ (behandlar|hanterar)|behandling av) (dina )?personuppgifter|"
    r"om du inte är (rätt|avsedd) mottagare|"
    r"this (e-?mail|message) (and any|is intended|may contain|contains)|"
    r"confidentiality notice|disclaimer:)",
    re.IGNORECASE,
)
_DISCLAIMER_WORDS = re.compile(
    r"personuppgift|dataskyddsförordning|gdpr|sekretess|konfidentiell|confidential",
    re.IGNORECASE,
)
_GREETING_ONLY = re.compile(
    r"^\s*(hej|hejsan|hallå|god\s+(morgon|dag|eftermiddag)|hi|hello|dear|tjena)"
    r"(\s+[\w\-.]+){0,3}\s*[!,.:]?\s*$",
    re.IGNORECASE,
)
# Help-desk reply markers ("##- Skriv ditt svar ovanför denna rad -##") carry no answer.
_HELPDESK_MARKER = re.compile(r"^\s*#{2,}-.*-#{2,}\s*$")
_CID = re.compile(r"^\s*\[cid:[^\]]*\]\s*$", re.IGNORECASE)
_INVISIBLE = str.maketrans({"\ufeff": "", "\u200b": "", "\u00a0": " ", "\u202f": " "})
_WORD = re.compile(r"\w+")
_WROTE = re.compile(r"\b(skrev|wrote|schrieb|a écrit)\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_MIN_WORDS_OF_COPY = 3
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_COMMENT_HEAD_LINES = 6
_HEADER_LOOKAHEAD = 6


def extract_new_text(msg: ParsedMessage | str) -> str:
    """The text a person wrote: quoted original, signature and disclaimer removed.

    Takes a ParsedMessage (its ``text``: for HTML-only mail the parser's conversion) or a
    plain string.
    """
    text = msg if isinstance(msg, str) else msg.text
    return _join(_new_lines(_lines(text), _ProbeText(None)))


def reply_text(msg: ParsedMessage | str, probe_body: str | None = None) -> str:
    """What the sender put above the quoted history, signature and footers included.

    The answer-quality rubric judges the signature and tells footers from the answer, so
    only the quote, attribution lines, device lines ("Skickat från min iPhone") and lines
    copied from the probe are dropped. A bare rule line that is not followed by a quoted
    message (a case system's footer under the officer's text) does not end the reply.
    """
    text = msg if isinstance(msg, str) else msg.text
    probe = _ProbeText(probe_body)
    lines = _latest_helpdesk_comment(_lines(text))
    end = _reply_end(lines)
    kept = [
        line
        for block in _unquoted_blocks(lines[:end])
        for line in [*block, ""]
        if not (_SENT_FROM_DEVICE.match(line) or _HELPDESK_MARKER.match(line) or _CID.match(line))
        and not probe.contains(line)
    ]
    return _join(kept)


def _reply_end(lines: Sequence[str]) -> int:
    start = 0
    while True:
        end = start + _quote_start(lines[start:])
        if end >= len(lines) or not _RULE.match(lines[end]) or _quote_follows(lines, end):
            return end
        start = end + 1


def _quote_follows(lines: Sequence[str], index: int) -> bool:
    """A quoted message (header block, attribution or "> " lines) right after a rule line."""
    following = [i for i in range(index + 1, len(lines)) if lines[i].strip()][:_HEADER_LOOKAHEAD]
    return any(
        _FROM.match(lines[i])
        or _HEADER_FIELD.match(lines[i])
        or _says_wrote(lines[i])
        or lines[i].lstrip().startswith(">")
        for i in following
    )


def has_new_text(msg: ParsedMessage | str, probe_body: str | None = None) -> bool:
    """True when the message carries text a person wrote beyond quote, signature, disclaimer.

    With ``probe_body``, lines copied from the probe never count (a copy of the question
    without quote markers), and answers written inside an Outlook-style quote of the probe
    (between its lines, no "> ") do count. The message kind is the caller's business:
    automatic mail has no human text whatever this says.
    """
    text = msg if isinstance(msg, str) else msg.text
    probe = _ProbeText(probe_body)
    lines = _lines(text)
    if any(_is_substantive(line) for line in _new_lines(lines, probe)):
        return True
    return bool(probe) and _inline_answers_in_quote(lines, probe)


def _lines(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    return [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def _join(lines: Iterable[str]) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _key(line: str) -> str:
    return " ".join(_WORD.findall(line.casefold()))


class _ProbeText:
    """The probe's words as one string, to find lines copied (and rewrapped) from it."""

    def __init__(self, probe_body: str | None) -> None:
        keys = (_key(line) for line in _lines(probe_body or ""))
        self.text = f" {' '.join(k for k in keys if k)} "

    def __bool__(self) -> bool:
        return bool(self.text.strip())

    def contains(self, line: str) -> bool:
        """The line is a piece of the probe (three words or more, whole words)."""
        key = _key(line)
        return len(key.split()) >= _MIN_WORDS_OF_COPY and f" {key} " in self.text


def _is_substantive(line: str) -> bool:
    return bool(_WORD.search(line)) and not _GREETING_ONLY.match(line)


def _new_lines(lines: Sequence[str], probe: _ProbeText) -> list[str]:
    """Unquoted lines before the quote starts, signature and disclaimer removed per block."""
    lines = _latest_helpdesk_comment(lines)
    end = _quote_start(lines)
    kept: list[str] = []
    for block in _unquoted_blocks(lines[:end]):
        kept.extend(_without_signature(block))
    return [line for line in kept if not probe.contains(line)]


def _latest_helpdesk_comment(lines: Sequence[str]) -> Sequence[str]:
    """Help desks (Zendesk and its kin) put a "reply above this line" marker and a notice
    first, then the comments newest first between separator lines, each headed by the
    author and a time stamp: the newest comment, without its head, is what was written.
    """
    marker = next((i for i, line in enumerate(lines) if _HELPDESK_MARKER.match(line)), None)
    if marker is None:
        return lines
    separators = [i for i in range(marker + 1, len(lines)) if _SEPARATOR.match(lines[i])]
    if not separators:
        return lines[marker + 1 :]
    end = separators[1] if len(separators) > 1 else len(lines)
    comment = list(lines[separators[0] + 1 : end])
    head = [i for i, line in enumerate(comment[:_COMMENT_HEAD_LINES]) if _TIME.search(line)]
    return comment[head[0] + 1 :] if head else comment


def _quote_start(lines: Sequence[str]) -> int:
    """Index of the first line of an Outlook block, separator line or top attribution."""
    for index, line in enumerate(lines):
        if (
            _SEPARATOR.match(line)
            or _is_header_block(lines, index)
            or _unquoted_attribution(lines, index)
        ):
            return index
    return len(lines)


def _is_header_block(lines: Sequence[str], index: int) -> bool:
    if not _FROM.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 1 + 3 * _HEADER_LOOKAHEAD] if line]
    fields = following[:_HEADER_LOOKAHEAD]
    return sum(1 for line in fields if _HEADER_FIELD.match(line)) >= 2


def _unquoted_blocks(lines: Sequence[str]) -> list[list[str]]:
    """Runs of lines outside "> " quotes, attribution lines dropped."""
    blocks: list[list[str]] = [[]]
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            if blocks[-1]:
                blocks.append([])
            continue
        if not _is_attribution(lines, index):
            blocks[-1].append(line)
    return [block for block in blocks if block]


def _next_nonblank(lines: Sequence[str], index: int) -> str | None:
    for line in lines[index + 1 :]:
        if line.strip():
            return line
    return None


def _quoted_after(lines: Sequence[str], index: int) -> bool:
    following = _next_nonblank(lines, index)
    return following is None or following.lstrip().startswith(">")


def _says_wrote(line: str) -> bool:
    return bool(_WROTE.search(line)) and bool(_ATTRIBUTION_START.match(line) or _DIGIT.search(line))


def _is_attribution(lines: Sequence[str], index: int) -> bool:
    """An attribution line before a "> " quote, or either half of one Gmail wrapped."""
    line = lines[index]
    if _ATTRIBUTION.search(line) and _quoted_after(lines, index):
        return True
    following = lines[index + 1] if index + 1 < len(lines) else ""
    if _says_wrote(line) and following.rstrip().endswith(":"):
        return _quoted_after(lines, index + 1)
    previous = lines[index - 1] if index > 0 else ""
    return line.rstrip().endswith(":") and _says_wrote(previous) and _quoted_after(lines, index)


def _unquoted_attribution(lines: Sequence[str], index: int) -> bool:
    """An attribution whose quote lost its "> " (HTML converted to text): the quote start."""
    line = lines[index]
    if not _says_wrote(line) or _quoted_after(lines, index):
        return False
    if line.rstrip().endswith(":"):
        return True
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return following.rstrip().endswith(":") and not _quoted_after(lines, index + 1)


def _without_signature(block: list[str]) -> list[str]:
    kept: list[str] = []
    for line in block:
        if _SIG_DASHES.match(line) or _SIGN_OFF.match(line) or _DISCLAIMER_START.match(line):
            break
        if _SENT_FROM_DEVICE.match(line) or _HELPDESK_MARKER.match(line) or _CID.match(line):
            continue
        kept.append(line)
    return _without_disclaimer_paragraphs(kept)


def _without_disclaimer_paragraphs(lines: list[str]) -> list[str]:
    """Drop a last paragraph that is a privacy or confidentiality notice."""
    paragraphs = _paragraphs(lines)
    while paragraphs and _DISCLAIMER_WORDS.search(" ".join(paragraphs[-1])):
        paragraphs.pop()
    return [line for paragraph in paragraphs for line in [*paragraph, ""]]


def _paragraphs(lines: Sequence[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _inline_answers_in_quote(lines: Sequence[str], probe: _ProbeText) -> bool:
    """Text written between the probe's own lines inside an Outlook-style quote."""
    quoted = lines[_quote_start(lines) :]
    hits = [i for i, line in enumerate(quoted) if probe.contains(line)]
    if len(hits) < 2:
        return False
    between = quoted[hits[0] + 1 : hits[-1]]
    return any(
        _is_substantive(line) and not probe.contains(line) and not _HEADER_FIELD.match(line)
        for line in between
    )
