"""Read one raw incoming mail into a ParsedMessage, never raising.

The stdlib parser is lenient, but under ``policy.default`` header *access* parses lazily,
can raise on malformed values and is slow (up to 0.5 s for one long DKIM or anti-spam
header). The tree is therefore parsed with compat32, and every header value is decoded here
once: values with RFC 2047 encoded words through policy.default's decoder, falling back to
email.header, others unfolded as they are. Problems go to ``defects``, never exceptions.

Work is bounded so that a 25 MB mail stays cheap: only the first MAX_PARSED_BYTES are
parsed (flagged "large-message"; the stdlib tree costs about ten times its input in memory,
and headers, text and a returned copy come before big attachments), at most MAX_PARTS MIME
parts are walked and at most MAX_TEXT_CHARS of body text are kept.

Returned copies (for matching a bounce to its probe):
- RFC 3464/6522 reports: the message/rfc822 (headers + first RETURNED_BODY_CHARS of its
  body) or text/rfc822-headers part.
- Non-standard bounces (Exim, qmail, old Exchange, ...): when the mail comes from a null
  sender, MAILER-DAEMON or postmaster or carries X-Failed-Recipients, the text after an
  MTA's "copy of the message" marker line; without a marker, the whole text body. Human
  mail never gets its quoted text here, so a quoted probe is not mistaken for a returned one.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser

from monitor.domain.model import DeliveryStatus, ParsedMessage

MAX_PARSED_BYTES = 2_000_000
MAX_PARTS = 1000
MAX_TEXT_CHARS = 1_000_000
RETURNED_BODY_CHARS = 4096
RETURNED_TEXT_CHARS = 64_000
MAX_PARSED_HEADER = 4000

_SURROGATE = re.compile("[\udc80-\udcff]")
_FOLD = re.compile(r"\r?\n[ \t]*")
_MSGID = re.compile(r"<[^<>\s]+>")
_STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_DELIVERED_TO_HEADERS = (
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "x-rcpt-to",
)
_RETURNED_PART_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)
_STATUS_PART_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# Marker lines MTAs put before the copy they return ("The original message was received
# at …" is how Sendmail's notice starts, not a copy). "-----Original Message-----" of
# Outlook quoting is deliberately absent: it is only considered on bounce-like senders.
_RETURNED_MARKER = re.compile(
    r"^[ \t]*-*[ \t]*(?:this is a copy of the message|below this line is a copy|"
    r"enclosed is a copy|original message|returned message|the header of the original|"
    r"original mail|the original message(?!\s+was\s+received)|undelivered message|"
    r"message headers follow|"
    r"content-type:[ \t]*(?:message/rfc822|text/rfc822-headers))"
    r"[^\n]{0,60}$",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)\b", re.I)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; anything odd is listed in ``defects``, nothing raises."""
    defects: list[str] = []
    if len(raw) > MAX_PARSED_BYTES:
        defects.append("large-message")
    try:
        msg = email.message_from_bytes(raw[:MAX_PARSED_BYTES], policy=email.policy.compat32)
        return _build(msg, raw, defects)
    except Exception as exc:  # the stdlib parser has known crash bugs
        defects.append(f"parse-error:{type(exc).__name__}")
        return _empty(raw, defects)


def _empty(raw: bytes, defects: list[str]) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        subject="",
        from_address=None,
        from_name=None,
        return_path=None,
        to=(),
        cc=(),
        delivered_to=(),
        in_reply_to=(),
        references=(),
        thread_topic=None,
        date=None,
        received_at=None,
        content_type="text/plain",
        report_type=None,
        headers=(),
        text=raw[:MAX_TEXT_CHARS].decode("utf-8", errors="replace"),
        html=None,
        size=len(raw),
        defects=tuple(defects),
    )


def _build(msg: Message, raw: bytes, defects: list[str]) -> ParsedMessage:
    headers = _decoded_headers(msg, defects)
    body = _BodyCollector(defects)
    body.walk(msg)
    first = _first_values(headers)
    from_name, from_address = _single_address(first.get("from"))
    sender = (from_name, from_address)
    returned_text = body.returned_text or _non_standard_returned(headers, sender, body)
    content_type, report_type = _top_content_type(msg, defects)
    return ParsedMessage(
        message_id=_first_msgid(first.get("message-id")),
        subject=first.get("subject", ""),
        from_address=from_address,
        from_name=from_name,
        return_path=_return_path(first.get("return-path")),
        to=_addresses(_all(headers, "to")),
        cc=_addresses(_all(headers, "cc")),
        delivered_to=_addresses(_all(headers, *_DELIVERED_TO_HEADERS)),
        in_reply_to=_msgids(first.get("in-reply-to")),
        references=_msgids(" ".join(_all(headers, "references"))),
        thread_topic=first.get("thread-topic"),
        date=_parse_date(first.get("date")),
        received_at=_received_at(first.get("received")),
        content_type=content_type,
        report_type=report_type,
        headers=headers,
        text=body.best_text(),
        html=body.html,
        text_from_html=body.text_is_html(),
        delivery_statuses=tuple(body.statuses),
        original_envelope_id=body.envelope_id,
        returned_message_id=body.returned_message_id or _returned_msgid_in_text(returned_text),
        returned_headers_text=returned_text,
        attachment_names=tuple(body.attachment_names),
        size=len(raw),
        defects=tuple(dict.fromkeys(defects)),
    )


# --- headers ---------------------------------------------------------------------------


def _decoded_headers(msg: Message, defects: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name.lower(), _decode_header(name, value, defects)) for name, value in msg.raw_items()
    )


def _decode_header(name: str, value: str, defects: list[str]) -> str:
    value = _unsurrogate(value)
    # policy.default's header parser is slow on long values (0.5 s for some DKIM and
    # anti-spam headers), and only encoded words (RFC 2047) need it: plain ASCII is kept.
    if "=?" not in value or len(value) > MAX_PARSED_HEADER:
        return _unfold(value)
    decoded = _decode_encoded_words(name, value, defects)
    # Unknown charsets and broken base64 decode silently to U+FFFD: say so.
    if "\ufffd" in decoded and "\ufffd" not in value:
        defects.append(f"undecodable-header:{name.lower()}")
    return decoded


def _decode_encoded_words(name: str, value: str, defects: list[str]) -> str:
    try:
        parsed = email.policy.default.header_fetch_parse(name, value)
        return _unfold(str(parsed))
    except Exception:  # policy.default raises on malformed values
        defects.append(f"header-parse-error:{name.lower()}")
    try:
        return _unfold(str(email.header.make_header(email.header.decode_header(value))))
    except Exception:  # fall back to the raw value
        return _unfold(value)


def _unsurrogate(value: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes; most such mail is UTF-8."""
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", errors="surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip()


def _first_values(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    return first


def _all(headers: tuple[tuple[str, str], ...], *names: str) -> list[str]:
    return [value for name, value in headers if name in names]


def _addresses(values: list[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for _name, address in _address_pairs(values):
        bare = address.strip().strip("<>").lower()
        if bare and "@" in bare:
            found.setdefault(bare, None)
    return tuple(found)


def _address_pairs(values: list[str]) -> list[tuple[str, str]]:
    simple = [_simple_address(item) for value in values for item in value.split(",")]
    if all(pair is not None for pair in simple):
        return [pair for pair in simple if pair is not None]
    try:
        return email.utils.getaddresses(values)
    except Exception:  # getaddresses has had crash bugs on hostile input
        return []


def _single_address(value: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    simple = _simple_address(value)
    if simple is not None:
        name, address = simple
    else:
        try:
            name, address = email.utils.parseaddr(value)
        except Exception:
            return None, None
    bare = address.strip().strip("<>").lower() or None
    return (name.strip() or None), bare


# The common shapes, "a@b", "<a@b>" and "Name <a@b>", read without email.utils (a third of
# parse time went to its address parser); anything else (quotes, comments, groups, odd
# characters) goes to email.utils. tests/domain/test_fuzz_properties.py checks both agree.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_ADDRESS = re.compile(rf"[ \t]*(?:<({_ADDR_SPEC})>|({_ADDR_SPEC}))[ \t]*")
_NAMED_ADDRESS = re.compile(rf"[ \t]*([A-Za-zÀ-ÖØ-öø-ÿ0-9 \t'-]*?)[ \t]*<({_ADDR_SPEC})>[ \t]*")


def _simple_address(value: str) -> tuple[str, str] | None:
    """(display name, address) of a plainly written address, else None; "" when absent."""
    plain = _PLAIN_ADDRESS.fullmatch(value)
    if plain is not None:
        return "", plain.group(1) or plain.group(2)
    named = _NAMED_ADDRESS.fullmatch(value)
    if named is not None:
        return " ".join(named.group(1).split()), named.group(2)
    return None


def _return_path(value: str | None) -> str | None:
    if value is None:
        return None
    inner = value.strip().strip("<>").strip()
    return inner.lower()


def _first_msgid(value: str | None) -> str | None:
    if value is None:
        return None
    ids = _msgids(value)
    if ids:
        return ids[0]
    return value.strip() or None


def _msgids(value: str | None) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value)) if value else ()


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # RFC 5322 "-0000" means UTC with unknown local zone; the stdlib returns it naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _received_at(value: str | None) -> datetime | None:
    if not value or ";" not in value:
        return None
    return _parse_date(value.rsplit(";", 1)[1])


def _top_content_type(msg: Message, defects: list[str]) -> tuple[str, str | None]:
    try:
        content_type = msg.get_content_type().lower()
        report_type = msg.get_param("report-type")
    except Exception:
        defects.append("header-parse-error:content-type")
        return "text/plain", None
    if isinstance(report_type, str):
        return content_type, report_type.strip().lower()
    return content_type, None


# --- body ------------------------------------------------------------------------------


class _BodyCollector:
    """Walks the MIME tree once, iteratively and bounded, collecting what is needed."""

    def __init__(self, defects: list[str]) -> None:
        self.defects = defects
        self.plain: str | None = None
        self.broken_multipart_text: str | None = None
        self.html: str | None = None
        self.statuses: list[DeliveryStatus] = []
        self.envelope_id: str | None = None
        self.returned_message_id: str | None = None
        self.returned_text = ""
        self.attachment_names: list[str] = []
        self.text_chars = 0

    def walk(self, root: Message) -> None:
        for part in _bounded_parts(root, self.defects):
            self._defects_of(part)
            try:
                self._visit(part)
            except Exception as exc:  # one broken part must not lose the rest
                self.defects.append(f"part-error:{type(exc).__name__}")

    def best_text(self) -> str:
        if self.plain is not None and (self.plain.strip() or self.html is None):
            return self.plain
        if self.html is not None:
            return html_to_text(self.html)[:MAX_TEXT_CHARS]
        return self.plain or self.broken_multipart_text or ""

    def text_is_html(self) -> bool:
        """The best text is the HTML body's: no text/plain part, or an empty one."""
        return self.html is not None and (self.plain is None or not self.plain.strip())

    def _defects_of(self, part: Message) -> None:
        for defect in getattr(part, "defects", ()):
            name = type(defect).__name__
            if name in ("CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect"):
                self.defects.append("truncated")
            self.defects.append(f"mime:{name}")

    def _visit(self, part: Message) -> None:
        content_type = part.get_content_type().lower()
        filename = _filename(part)
        if filename:
            self.attachment_names.append(filename)
        if content_type in _STATUS_PART_TYPES:
            self._read_statuses(part)
        elif content_type in _RETURNED_PART_TYPES:
            self._read_returned(part, content_type)
        elif content_type.startswith("multipart/") and not part.is_multipart():
            # Boundary missing or wrong: the parser leaves the whole body as one string.
            self.broken_multipart_text = self.broken_multipart_text or self._text(part)
        elif part.is_multipart() or _is_attachment(part, filename):
            return
        elif content_type == "text/plain" and self.plain is None:
            self.plain = self._text(part)
        elif content_type == "text/html" and self.html is None:
            self.html = self._text(part)

    def _text(self, part: Message) -> str:
        budget = MAX_TEXT_CHARS - self.text_chars
        if budget <= 0:
            self.defects.append("text-capped")
            return ""
        text = decode_text_part(part, self.defects)
        if len(text) > budget:
            self.defects.append("text-capped")
            text = text[:budget]
        self.text_chars += len(text)
        return text

    def _read_statuses(self, part: Message) -> None:
        envelope_id, statuses = parse_delivery_status(_status_text(part, self.defects))
        self.envelope_id = self.envelope_id or envelope_id
        self.statuses.extend(statuses)

    def _read_returned(self, part: Message, content_type: str) -> None:
        if self.returned_text:
            return
        if content_type in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                self.returned_text = _returned_message_text(inner[0], self.defects)
                self.returned_message_id = _first_msgid(_raw_header(inner[0], "message-id"))
                return
        text = decode_text_part(part, self.defects)[:RETURNED_TEXT_CHARS]
        self.returned_text = text
        self.returned_message_id = _returned_msgid_in_text(text)


def _bounded_parts(root: Message, defects: list[str]) -> Iterator[Message]:
    """Depth-first, document order; the children of a returned message are not walked."""
    stack = [root]
    seen = 0
    while stack:
        part = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            defects.append("too-many-parts")
            return
        yield part
        if part.is_multipart() and part.get_content_type() not in _RETURNED_PART_TYPES:
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))


def _filename(part: Message) -> str | None:
    # Most parts name no file; looking first spares two full parameter parses per part.
    declared = f"{part.get('content-disposition', '')} {part.get('content-type', '')}"
    if "name" not in declared.lower():
        return None
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    return (
        _decode_header("content-disposition", str(name), [])
        if "=?" in name
        else _unsurrogate(str(name))
    )


def _is_attachment(part: Message, filename: str | None) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or (filename is not None and disposition != "inline")


def decode_text_part(part: Message, defects: list[str]) -> str:
    """The decoded text of a leaf part; unknown charsets decode as UTF-8 with replacement."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    data = payload[: MAX_TEXT_CHARS * 4]
    charset = _charset(part)
    try:
        return data.decode(charset)
    except LookupError:
        defects.append(f"undecodable-charset:{charset}")
    except UnicodeDecodeError:
        defects.append(f"undecodable-text:{charset}")
        return data.decode(charset, errors="replace")
    return data.decode("utf-8", errors="replace")


def _charset(part: Message) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    if not charset:
        return "utf-8" if part.get_content_type().startswith("text/") else "latin-1"
    # Mail says ascii but usually means "whatever 8-bit the client had".
    return "utf-8" if charset in ("us-ascii", "ascii", "unknown-8bit", "x-unknown") else charset


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name:
            return _unsurrogate(str(value))
    return None


def _returned_message_text(inner: Message, defects: list[str]) -> str:
    head = "".join(f"{k}: {_unsurrogate(str(v))}\n" for k, v in inner.raw_items())
    body = ""
    for part in _bounded_parts(inner, defects):
        if not part.is_multipart() and part.get_content_maintype() == "text":
            body = decode_text_part(part, defects)[:RETURNED_BODY_CHARS]
            break
    return f"{head}\n{body}"


def _returned_msgid_in_text(text: str) -> str | None:
    match = re.search(r"^message-id:\s*(<[^<>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


def _status_text(part: Message, defects: list[str]) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                lines = (f"{k}: {_unsurrogate(str(v))}" for k, v in block.raw_items())
                blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
    return decode_text_part(part, defects)


def _non_standard_returned(
    headers: tuple[tuple[str, str], ...],
    sender: tuple[str | None, str | None],
    body: _BodyCollector,
) -> str:
    if not _looks_like_bounce_sender(headers, sender[1], sender[0]):
        return ""
    text = body.best_text()
    marker = _RETURNED_MARKER.search(text)
    if marker:
        return text[marker.end() :][:RETURNED_TEXT_CHARS].lstrip("\r\n")
    return text[:RETURNED_TEXT_CHARS]


def _looks_like_bounce_sender(
    headers: tuple[tuple[str, str], ...], from_address: str | None, from_name: str | None
) -> bool:
    names = {name for name, _ in headers}
    if "x-failed-recipients" in names:
        return True
    return_path = _return_path(_first_values(headers).get("return-path"))
    if return_path == "":
        return True
    local = (from_address or "").split("@", 1)[0]
    return bool(_BOUNCE_SENDER.match(local) or _BOUNCE_SENDER.match(from_name or ""))


# --- delivery-status -------------------------------------------------------------------


def parse_delivery_status(text: str) -> tuple[str | None, list[DeliveryStatus]]:
    """Parse the body of a message/delivery-status part (RFC 3464 section 2)."""
    envelope_id: str | None = None
    statuses: list[DeliveryStatus] = []
    for fields in _status_blocks(text):
        envelope_id = envelope_id or fields.get("original-envelope-id")
        if any(k in fields for k in ("action", "final-recipient", "original-recipient")):
            statuses.append(_delivery_status(fields))
    return envelope_id, statuses


def _status_blocks(text: str) -> Iterator[dict[str, str]]:
    for block in re.split(r"\r?\n[ \t]*\r?\n", text):
        fields: dict[str, str] = {}
        last: str | None = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last is not None:
                fields[last] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                last = name.strip().lower()
                fields.setdefault(last, value.strip())
        if fields:
            yield fields


def _delivery_status(fields: dict[str, str]) -> DeliveryStatus:
    action = fields.get("action", "").strip().lower() or None
    status = _STATUS_CODE.search(fields.get("status", ""))
    recipient = _typed_value(fields.get("final-recipient") or fields.get("original-recipient"))
    diagnostic = _typed_value(fields.get("diagnostic-code"), lower=False)
    return DeliveryStatus(
        action=action.split()[0] if action else None,
        status=status.group(0) if status else None,
        recipient=recipient,
        diagnostic=diagnostic,
    )


def _typed_value(value: str | None, lower: bool = True) -> str | None:
    """'rfc822; user@example.org' -> 'user@example.org' (RFC 3464 address-type ; value)."""
    if not value:
        return None
    head, sep, tail = value.partition(";")
    result = (tail if sep and " " not in head.strip() else value).strip().strip("<>").strip()
    if not result:
        return None
    return result.lower() if lower else result


# --- HTML ------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "br",
        "p",
        "div",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "hr",
        "ul",
        "ol",
        "pre",
    }
)
_SKIPPED_TAGS = frozenset({"style", "script", "head", "title"})


_WEB_HREF = re.compile(r"^\s*(https?://|www\.)\S+\s*$", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    def __init__(self, with_links: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.with_links = with_links
        self.href: str | None = None
        self.anchor_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self.skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")
        elif tag == "a" and self.with_links:
            href = dict(attrs).get("href") or ""
            self.href = href.strip() if _WEB_HREF.match(href) else None
            self.anchor_start = len(self.chunks)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK_TAGS and tag != "br":
            self.chunks.append("\n")
        elif tag == "a" and self.href is not None:
            # Outlook's plain-text twin writes a link as "text<href>"; do the same unless
            # the anchor text already is the address.
            if self.href not in "".join(self.chunks[self.anchor_start :]):
                self.chunks.append(f"<{self.href}>")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.chunks.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str, *, with_links: bool = False) -> str:
    """Readable text of an HTML body: no style/script, line breaks at block elements.

    With ``with_links`` every web link keeps its address after its text, as "text<href>".
    """
    extractor = _TextExtractor(with_links)
    try:
        extractor.feed(html[: MAX_TEXT_CHARS * 2])
        extractor.close()
    except Exception:  # html.parser can assert on hostile markup
        return re.sub(r"<[^>]*>", " ", html[:MAX_TEXT_CHARS])
    text = "".join(extractor.chunks).replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
