"""Mutations of raw RFC 5322 messages: headers, MIME structure, charsets, encodings, bytes.

Every mutator is a pure function of (message, random source, donor messages), so a case is
reproduced from its seed alone. The nasty values are the ones real broken mail carries
(RFC 2047 words with unknown charsets, unterminated comments and quotes, missing or wrong
boundaries, 8-bit bytes in headers, bare CR) plus sizes that stress the bounds.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable, Sequence

Mutator = Callable[[bytes, random.Random, Sequence[bytes]], bytes]

NASTY_CHARSETS = (
    b"bogus-charset",
    b"x-unknown",
    b"unknown-8bit",
    b"utf-7",
    b"utf-16",
    b"utf-32",
    b"iso-2022-jp",
    b"cp65001",
    b"utf8mb4",
    b"\xff\xfe",
    b"",
    b'"utf-8',
    b"windows-1252",
    b"gb18030",
    b"koi8-r",
    b"rot13",
    b"base64",
    b"idna",
    b"punycode",
)

NASTY_HEADER_VALUES = (
    b"=?utf-8?B?####?=",
    b"=?bogus?Q?abc?=",
    b"=?utf-8?Q?=FF=FE=00?=",
    b"=?iso-2022-jp?B?GyRC?=",
    b"=?utf-8*sv?B?w6Q=?=",
    b"=?utf-7?Q?+AOQ-?=",
    b"=?=?=?=?",
    b"=?utf-8?B?" + base64.b64encode(b"\xff\xfe\xfd") + b"?=",
    b"=?utf-16?B?" + base64.b64encode("åäö".encode("utf-16")) + b"?=",
    b"((((((((((((((((((((((((((((((",
    b'"unterminated <a@b',
    b"<<<<>>>>@@@@",
    b'a@b, , ,;;; <c@d>, "x" <>',
    b"\xe5\xe4\xf6 \xc3\xa5\xc3\xa4 <r\xe4ksm\xf6rg\xe5s@example.se>",
    b"Mon, 99 Foo 99999 99:99:99 +9999",
    b"Tue, 31 Feb 2026 25:61:61 -0000",
    b"<>",
    b"\x00\x01\x02",
    b"x" * 5000,
    b"=?utf-8?B?w6U=?=" * 400,
    b",".join(b"<id%d@x>" % i for i in range(500)),
    b"rfc822; \x00; ;",
    b"multipart/mixed; boundary=",
    b'multipart/report; report-type="delivery-status; boundary="',
)

INTERESTING_HEADERS = (
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
    b"Content-Type: message/delivery-status",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/rfc822-headers",
    b"Content-Type: text/html; charset=bogus",
    b"Content-Type: multipart/alternative; boundary=",
    b"Content-Type: text/plain; charset*=utf-8''%FF%FE",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode",
    b"Content-Transfer-Encoding: bogus",
    b"Content-Disposition: attachment; filename*=utf-8''%E5%E4.txt",
    b"Content-Disposition: attachment; filename==?utf-8?B?w6U=?=",
    b"Auto-Submitted: auto-replied",
    b"Precedence: bulk",
    b"Return-Path: <>",
    b"From: MAILER-DAEMON <MAILER-DAEMON@example.org>",
    b"Subject: Undelivered Mail Returned to Sender",
    b"Subject: SV: [\xc4rende #123456] =?utf-8?Q?Fr=C3=A5ga?=",
    b"X-Failed-Recipients: a@b, ,,<>",
    b"In-Reply-To: <probe.jbukgzr4dv@kontroll.example.org>",
    b"References: " + b" ".join(b"<r%d@x>" % i for i in range(300)),
    b"To: fraga+jbukgzr4dv@kontroll.example.org",
    b"Received: from x by y; Mon, 99 Foo 99999 99:99:99 +9999",
    b"List-Id: <list.example.org>",
    b"X-Spam-Flag: YES",
)

NASTY_BODIES = (
    b"<html><body><div><p>" * 300 + b"text",
    b"<!-- never closed <script>alert(1)",
    b"<![CDATA[ x ]]> &#xFFFFFFFF; &#0; &#x110000; &bogus; <a href='",
    b"=\r\n=ZZ=F=\r\n=C3=A5=C3\r\n",
    b"begin 644 x.txt\r\nM9F]O\r\nend\r\n",
    b"Action: failed\r\nStatus: 5.1.1\r\nFinal-Recipient: rfc822;\r\n\r\n" * 50,
    b"\r\n" * 5000,
    b"> " * 3000 + b"\n",
    b"Den " + b"x" * 200 + b" skrev:\n" * 50,
    b"-" * 20000,
)

_HEADER_LINE = re.compile(rb"^[!-9;-~]+:.*$", re.MULTILINE)
_CHARSET = re.compile(rb"charset=\"?[^\s;\"]*\"?", re.IGNORECASE)
_BOUNDARY = re.compile(rb"boundary=\"?([^\s;\"]+)\"?", re.IGNORECASE)
_BASE64_LINE = re.compile(rb"^[A-Za-z0-9+/=]{20,}\r?$", re.MULTILINE)


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(head, separator, body) at the first empty line; no separator means all head."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            return head, found, body
    return raw, b"", b""


def _position(raw: bytes, rng: random.Random) -> int:
    return rng.randrange(len(raw) + 1)


def truncate(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    return raw[: _position(raw, rng)]


def flip_bytes(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    if not raw:
        return raw
    data = bytearray(raw)
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def insert_junk(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    pieces = (b"\x00", b"\xff", b"=?", b"?=", b"\r", b"\n", b"--", b"\xc3", b";", b'"', b"<")
    junk = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 20)))
    if rng.random() < 0.3:
        junk = rng.randbytes(rng.randint(1, 64))
    at = _position(raw, rng)
    return raw[:at] + junk + raw[at:]


def delete_range(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    start = _position(raw, rng)
    return raw[:start] + raw[start + rng.randint(1, 512) :]


def duplicate_range(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    start = _position(raw, rng)
    piece = raw[start : start + rng.randint(1, 2048)]
    return raw[:start] + piece * rng.randint(2, 4) + raw[start:]


def splice(raw: bytes, rng: random.Random, donors: Sequence[bytes]) -> bytes:
    donor = rng.choice(donors) if donors else raw
    return raw[: _position(raw, rng)] + donor[_position(donor, rng) :]


def line_endings(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    choice = rng.randrange(3)
    if choice == 0:
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if choice == 1:
        return raw.replace(b"\r\n", b"\n")
    return raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def _header_lines(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    head, separator, body = split_head(raw)
    return head.split(b"\n"), separator or b"\n\n", body


def _join(lines: list[bytes], separator: bytes, body: bytes) -> bytes:
    return b"\n".join(lines) + separator + body


def header_value(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    lines, separator, body = _header_lines(raw)
    at = rng.randrange(len(lines))
    name = lines[at].split(b":", 1)[0] if b":" in lines[at] else b"Subject"
    lines[at] = name + b": " + rng.choice(NASTY_HEADER_VALUES)
    return _join(lines, separator, body)


def header_shuffle(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    lines, separator, body = _header_lines(raw)
    choice = rng.randrange(4)
    at = rng.randrange(len(lines))
    if choice == 0:
        del lines[at]
    elif choice == 1:
        lines.insert(at, lines[at])
    elif choice == 2:
        lines[at] = lines[at].replace(b":", b"", 1)  # a header line without a colon
    else:
        rng.shuffle(lines)
    return _join(lines, separator, body)


def header_insert(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    lines, separator, body = _header_lines(raw)
    for _ in range(rng.randint(1, 4)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(INTERESTING_HEADERS))
    return _join(lines, separator, body)


def fold_damage(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    """Break or abuse header folding: continuation lines without a header, huge folds."""
    lines, separator, body = _header_lines(raw)
    at = rng.randrange(len(lines))
    fold = b"\n " + b"x" * rng.randint(0, 200)
    lines[at] = lines[at] + fold * rng.randint(1, 300)
    if rng.random() < 0.3:
        lines.insert(0, b" continuation without a header")
    return _join(lines, separator, body)


def charset_swap(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    replacement = b"charset=" + rng.choice(NASTY_CHARSETS)
    swapped = _CHARSET.sub(lambda _m: replacement, raw, count=rng.randint(1, 5))
    if swapped != raw:
        return swapped
    return header_insert(raw, rng, ())


def boundary_damage(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    found = _BOUNDARY.search(raw)
    if found is None:
        return wrap_multipart(raw, rng, ())
    boundary = found.group(1)
    choice = rng.randrange(4)
    if choice == 0:  # declared boundary no longer used
        return raw[: found.start(1)] + b"changed" + raw[found.end(1) :]
    if choice == 1:  # closing boundary removed: a truncated multipart
        return raw.replace(b"--" + boundary + b"--", b"")
    if choice == 2:  # every delimiter removed
        return raw[: found.end()] + raw[found.end() :].replace(b"--" + boundary, b"")
    return raw[: found.start(1)] + raw[found.end(1) :]  # empty boundary parameter


def wrap_multipart(raw: bytes, rng: random.Random, donors: Sequence[bytes]) -> bytes:
    """Nest the message in multiparts, many parts wide or many levels deep."""
    if rng.random() < 0.5:
        parts = [rng.choice(donors) if donors else raw for _ in range(rng.randint(2, 12))]
        return _multipart(parts, b"wide")
    body = raw
    for level in range(rng.randint(2, 80)):
        body = _multipart([body], b"deep%d" % level)
    return body


def _multipart(parts: list[bytes], boundary: bytes) -> bytes:
    head = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
    chunks = [b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts]
    return head + b"".join(chunks) + b"--" + boundary + b"--\r\n"


def encoding_damage(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    lines = _BASE64_LINE.findall(raw)
    if lines and rng.random() < 0.7:
        victim = rng.choice(lines)
        return raw.replace(victim, victim[: len(victim) // 2] + b"!!*~", 1)
    head, separator, body = split_head(raw)
    cte = rng.choice((b"base64", b"quoted-printable", b"x-uuencode", b"7bit", b"binary"))
    return head + b"\nContent-Transfer-Encoding: " + cte + (separator or b"\n\n") + body


def body_swap(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    head, separator, _body = split_head(raw)
    content_type = rng.choice((b"text/html", b"text/plain", b"message/delivery-status"))
    return (
        head
        + b"\nContent-Type: "
        + content_type
        + (separator or b"\n\n")
        + rng.choice(NASTY_BODIES)
    )


def raw_8bit_headers(raw: bytes, rng: random.Random, _donors: Sequence[bytes]) -> bytes:
    head, separator, body = split_head(raw)
    encoding = rng.choice(("latin-1", "utf-16-le", "cp1252", "utf-8"))
    extra = "Subject: Ärende åäö ÅÄÖ €".encode(encoding, errors="replace")
    return head + b"\n" + extra + (separator or b"\n\n") + body


MUTATORS: tuple[Mutator, ...] = (
    truncate,
    flip_bytes,
    insert_junk,
    delete_range,
    duplicate_range,
    splice,
    line_endings,
    header_value,
    header_shuffle,
    header_insert,
    fold_damage,
    charset_swap,
    boundary_damage,
    wrap_multipart,
    encoding_damage,
    body_swap,
    raw_8bit_headers,
)

MAX_CASE_BYTES = 4_000_000  # mutations compound; keep one case far below the 25 MB test


def mutate(raw: bytes, rng: random.Random, donors: Sequence[bytes]) -> bytes:
    """One to three mutations in a row, each chosen at random."""
    for _ in range(rng.randint(1, 3)):
        raw = rng.choice(MUTATORS)(raw, rng, donors)[:MAX_CASE_BYTES]
    return raw
