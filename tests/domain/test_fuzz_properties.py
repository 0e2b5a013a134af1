"""Properties of the mail pipeline on generated and mutated input (issue 7, bad input).

Parser, classifier, matcher and new-text detector never raise, and what they return keeps
the promises of model.py (lower-case bare addresses, aware datetimes, one kind, a match only
to a probe sent before the message arrived). A sample of the fuzz target runs here too;
``make fuzz`` runs 100,000 cases of it.
"""

from __future__ import annotations

import base64
import email.utils
import quopri
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # fuzz/ is a tool beside the package, not installed with it
    sys.path.insert(0, str(ROOT))

from fuzz.mutate import MUTATORS, NASTY_CHARSETS, NASTY_HEADER_VALUES, mutate  # noqa: E402
from fuzz.run import run  # noqa: E402
from fuzz.target import RECEIVED_AT, corpus, probe_index  # noqa: E402
from monitor.domain import bounce, signals_sv  # noqa: E402
from monitor.domain.classify import classify, new_text  # noqa: E402
from monitor.domain.mailparse import (  # noqa: E402
    MAX_TEXT_CHARS,
    _simple_address,
    html_to_text,
    parse_delivery_status,
    parse_message,
)
from monitor.domain.matching import find_tokens, match_message  # noqa: E402
from monitor.domain.model import (  # noqa: E402
    NO_MATCH,
    MatchMethod,
    MessageKind,
    ParsedMessage,
)
from monitor.domain.newtext import extract_new_text, has_new_text  # noqa: E402

MSGID = re.compile(r"<[^<>\s]+>")
QUICK = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------

HEADER_NAMES = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Received",
    "Return-Path",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Precedence",
    "X-Failed-Recipients",
    "Delivered-To",
    "Thread-Topic",
    "List-Id",
)
CHARSET_NAMES = ("utf-8", "iso-8859-1", "windows-1252", "utf-16", "koi8-r", "bogus", "utf-7")


def _encoded_word(text: str, charset: str, use_base64: bool) -> bytes:
    data = text.encode(charset if charset != "bogus" else "utf-8", errors="replace")
    if use_base64:
        return b"=?%s?B?%s?=" % (charset.encode(), base64.b64encode(data))
    return b"=?%s?Q?%s?=" % (charset.encode(), quopri.encodestring(data, header=True).strip())


header_values = st.one_of(
    st.text(max_size=80).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
    st.sampled_from(NASTY_HEADER_VALUES),
    st.builds(_encoded_word, st.text(max_size=30), st.sampled_from(CHARSET_NAMES), st.booleans()),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=12)
leaf_bodies = st.one_of(st.binary(max_size=600), st.text(max_size=600).map(str.encode))


@st.composite
def mime_bodies(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A leaf body, or a multipart whose parts are themselves generated (a few levels deep)."""
    if depth >= 3 or draw(st.booleans()):
        return draw(leaf_bodies)
    boundary = draw(st.sampled_from((b"b1", b"==x==", b"", b"b1 b2")))
    parts = draw(st.lists(mime_part(depth + 1), max_size=5))
    closing = b"--" + boundary + b"--\r\n" if draw(st.booleans()) else b""
    return b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + closing


@st.composite
def mime_part(draw: st.DrawFn, depth: int) -> bytes:
    content_type = draw(
        st.sampled_from(
            (
                b"text/plain",
                b"text/html",
                b"message/rfc822",
                b"message/delivery-status",
                b"text/rfc822-headers",
                b'multipart/mixed; boundary="b1"',
                b'multipart/report; report-type=delivery-status; boundary="==x=="',
            )
        )
    )
    charset = draw(st.sampled_from((*NASTY_CHARSETS, b"utf-8")))
    cte = draw(st.sampled_from((b"7bit", b"base64", b"quoted-printable", b"bogus")))
    head = b"Content-Type: %s; charset=%s\r\nContent-Transfer-Encoding: %s\r\n" % (
        content_type,
        charset,
        cte,
    )
    return head + b"\r\n" + draw(mime_bodies(depth))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = [name.encode() + b": " + value for name, value in draw(headers)]
    if draw(st.booleans()):
        lines.append(b'Content-Type: multipart/mixed; boundary="b1"')
    line_end = draw(st.sampled_from((b"\r\n", b"\n")))
    return line_end.join(lines) + line_end + line_end + draw(mime_bodies())


def _mutated(index: int, seed: int) -> bytes:
    messages = corpus()
    return mutate(messages[index % len(messages)], random.Random(seed), messages)


corpus_mutations = st.builds(_mutated, st.integers(min_value=0), st.integers())
any_message = st.one_of(st.binary(max_size=3000), messages(), corpus_mutations)


# --- invariants ------------------------------------------------------------------------


def _assert_model_promises(raw: bytes, parsed: ParsedMessage) -> None:
    assert parsed.size == len(raw)
    assert all(name == name.lower() for name, _ in parsed.headers)
    for address in (*parsed.to, *parsed.cc, *parsed.delivered_to):
        assert "@" in address and address == address.lower()
        assert not address.startswith("<") and not address.endswith(">")
    assert parsed.from_address is None or parsed.from_address == parsed.from_address.lower()
    assert all(MSGID.fullmatch(i) for i in (*parsed.in_reply_to, *parsed.references))
    for moment in (parsed.date, parsed.received_at):
        assert moment is None or moment.tzinfo is not None
    assert "/" in parsed.content_type and parsed.content_type == parsed.content_type.lower()
    assert len(parsed.text) <= 2 * MAX_TEXT_CHARS
    assert len(set(parsed.defects)) == len(parsed.defects)


@QUICK
@given(any_message)
def test_parsed_message_keeps_the_model_promises_on_any_input(raw: bytes) -> None:
    _assert_model_promises(raw, parse_message(raw))


@QUICK
@given(any_message)
def test_parsing_is_deterministic(raw: bytes) -> None:
    assert parse_message(raw) == parse_message(raw)


@QUICK
@given(any_message)
def test_classification_is_exactly_one_kind_with_its_reasons(raw: bytes) -> None:
    verdict = classify(parse_message(raw))
    assert isinstance(verdict.kind, MessageKind)
    assert verdict.reasons
    if verdict.kind is not MessageKind.BOUNCE:
        assert verdict.permanent is None
    else:
        assert isinstance(verdict.permanent, bool)


@QUICK
@given(any_message, st.integers(min_value=-400, max_value=400))
def test_match_only_ties_to_a_known_probe_sent_before_arrival(raw: bytes, days: int) -> None:
    parsed = parse_message(raw)
    verdict = classify(parsed)
    index = probe_index()
    received_at = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=days)
    found = match_message(parsed, verdict.kind, index, received_at=received_at)
    assert found.matched == (found.method is not MatchMethod.NONE)
    if found.probe_token is not None:
        assert index.by_token[found.probe_token].sent_at <= received_at
    if verdict.kind is MessageKind.BULK:
        assert found == NO_MATCH


@QUICK
@given(any_message)
def test_new_text_detection_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)
    probe = probe_index()[0]
    assert isinstance(has_new_text(parsed, probe.body), bool)
    assert isinstance(has_new_text(parsed.text), bool)
    assert len(extract_new_text(parsed)) <= len(parsed.text)
    assert parsed.text.startswith(new_text(parsed.text))


@QUICK
@given(st.text(max_size=3000))
def test_html_to_text_and_delivery_status_never_raise_on_any_text(text: str) -> None:
    assert isinstance(html_to_text(text), str)
    envelope_id, statuses = parse_delivery_status(text)
    assert envelope_id is None or isinstance(envelope_id, str)
    assert all(s.action is None or s.action == s.action.lower() for s in statuses)


@QUICK
@given(st.text(max_size=400), st.sets(st.from_regex(r"[a-z0-9]{6,10}", fullmatch=True)))
def test_found_tokens_are_known_and_occur_in_the_text(text: str, known: set[str]) -> None:
    found = find_tokens(text, known)
    assert set(found) <= known
    assert all(token in text.lower() for token in found)
    assert len(found) == len(set(found))


# --- round trip: what a real client writes is read back --------------------------------

readable = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\u2028\u2029"
    ),
    min_size=1,
    max_size=120,
).filter(lambda t: t.strip())
local_parts = st.from_regex(r"[a-z][a-z0-9.+_-]{0,20}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)


@SLOW
@given(readable, readable, local_parts, st.sampled_from(("lund.se", "Kommun.Example.SE")))
def test_subject_sender_and_body_written_by_the_stdlib_are_read_back(
    subject: str, body: str, local: str, domain: str
) -> None:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name="Eva Lind", addr_spec=f"{local}@{domain}")
    message["To"] = "fraga+abc123@kontroll.example.org"
    message["Subject"] = subject
    message["Message-ID"] = "<reply.1@lund.se>"
    message.set_content(body)
    parsed = parse_message(message.as_bytes())
    assert " ".join(parsed.subject.split()) == " ".join(subject.split())
    assert parsed.from_address == f"{local}@{domain}".lower()
    assert parsed.to == ("fraga+abc123@kontroll.example.org",)
    assert parsed.message_id == "<reply.1@lund.se>"
    assert parsed.text.replace("\r\n", "\n").strip() == body.replace("\r\n", "\n").strip()
    assert parsed.defects == ()


# --- the fuzz target itself ------------------------------------------------------------


def test_every_mutator_returns_bytes_for_every_corpus_message() -> None:
    messages = corpus()
    for number, mutator in enumerate(MUTATORS):
        rng = random.Random(number)
        for raw in messages[:: max(1, len(messages) // 25)]:
            assert isinstance(mutator(raw, rng, messages), bytes)


def test_fuzz_sample_of_mutated_corpus_raises_nothing() -> None:
    report = run(600, seed="make-test", workers=1, budget=float("inf"))
    assert report.cases == 600
    assert report.failures == ()
    assert RECEIVED_AT.tzinfo is not None


# --- the address fast path agrees with email.utils ----------------------------------------

address_like = st.text(
    alphabet=st.sampled_from(list("aZ09.-_+'@<> \t,\"()\\;:[]åÖé!#=?")), max_size=40
)


@QUICK
@given(
    st.one_of(address_like, st.sampled_from(NASTY_HEADER_VALUES).map(lambda b: b.decode("latin-1")))
)
def test_plainly_written_addresses_read_as_email_utils_reads_them(value: str) -> None:
    simple = _simple_address(value)
    if simple is not None:
        name, address = email.utils.parseaddr(value)
        assert (simple[0].strip(), simple[1].lower()) == (name.strip(), address.lower())
    items = [_simple_address(item) for item in value.split(",")]
    if all(item is not None for item in items):
        expected = [a.lower() for _, a in email.utils.getaddresses([value]) if "@" in a]
        assert [a.lower() for _, a in filter(None, items) if "@" in a] == expected


def test_every_address_header_in_the_corpus_reads_as_email_utils_reads_it() -> None:
    fields = ("from", "to", "cc", "reply-to", "sender", "delivered-to", "x-original-to")
    values = {v for raw in corpus() for n, v in parse_message(raw).headers if n in fields}
    fast = [v for v in values if _simple_address(v) is not None]
    assert len(fast) > len(values) // 2  # the fast path is the common path
    for value in fast:
        simple = _simple_address(value)
        assert simple is not None
        name, address = email.utils.parseaddr(value)
        assert (simple[0].strip(), simple[1].lower()) == (name.strip(), address.lower())


# --- wording searched in lowered text agrees with re.IGNORECASE ------------------------

WORDINGS = [
    value
    for module in (signals_sv, bounce)
    for value in vars(module).values()
    if isinstance(value, signals_sv.Wording)
]


@cache
def _corpus_texts() -> tuple[str, ...]:
    return tuple(parse_message(raw).text for raw in corpus())


def _case_mixed(index: int, seed: int) -> str:
    text = _corpus_texts()[index % len(corpus())][:3000]
    rng = random.Random(seed)
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


@QUICK
@given(st.sampled_from(WORDINGS), st.builds(_case_mixed, st.integers(0), st.integers()))
def test_wording_in_lowered_text_finds_what_ignorecase_finds(
    wording: signals_sv.Wording, text: str
) -> None:
    ignoring_case = re.compile(wording.pattern, re.IGNORECASE)
    assert bool(wording.search(text)) == bool(ignoring_case.search(text))


def test_every_wording_pattern_finds_something_in_the_corpus() -> None:
    assert len(WORDINGS) >= 10
    for wording in WORDINGS:
        assert any(wording.search(text) for text in _corpus_texts()), wording.pattern[:40]


# --- regressions found by the fuzz target -------------------------------------------------


def _bounce_returning_subject(subject: bytes) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.org\r\n"
        b"To: matning@kontroll.example.org\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; kontaktcenter@lund.se\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Subject: " + subject + b"\r\n--b--\r\n"
    )


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(b"=?utf-\xad8?B?w6U=?=", id="charset-name-with-soft-hyphen"),
        pytest.param(b"=?utf\xff8?Q?x?=", id="charset-name-with-8-bit-byte"),
        pytest.param(b"=?utf-8?B?w?=", id="base64-one-character"),
        pytest.param(b"=?utf-8?b?w6Uxx?=", id="base64-bad-length"),
    ],
)
def test_bounce_whose_returned_subject_has_a_broken_encoded_word_is_matched_without_error(
    subject: bytes,
) -> None:
    # email.header raised CharsetError / HeaderParseError out of the failed-recipient rule.
    parsed = parse_message(_bounce_returning_subject(subject))
    verdict = classify(parsed)
    assert verdict.kind is MessageKind.BOUNCE
    found = match_message(parsed, verdict.kind, probe_index(), received_at=RECEIVED_AT)
    assert found == NO_MATCH
