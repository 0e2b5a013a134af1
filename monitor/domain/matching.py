"""Tie an incoming message to the probe it answers, most reliable key first.

Order (issue 3): token in a recipient address, the probe in a returned copy (delivery
reports), In-Reply-To, References, normalised subject, quoted question text, and as a last
resort the sender's domain within a time window. A message is never tied to a probe sent
after it arrived, and bulk mail is never tied to any probe.

Pure functions, no I/O. ``ProbeIndex`` holds dictionaries keyed by token, Message-ID,
subject, target domain and question-text shingles, so matching one message against
thousands of probes costs a few dictionary look-ups, not a scan per probe. Pass a
``ProbeIndex`` (it is a ``Sequence[ProbeCandidate]``) to reuse it across messages.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.errors import MessageError
from email.header import decode_header, make_header
from functools import cached_property
from typing import overload

from monitor.domain.model import (
    NO_MATCH,
    Match,
    MatchMethod,
    MessageKind,
    ParsedMessage,
    ProbeCandidate,
)
from monitor.domain.subjects import fold, normalize_subject, subject_variants


@dataclass(frozen=True)
class MatchPolicy:
    sender_window: timedelta = timedelta(days=30)
    subject_window: timedelta = timedelta(days=60)
    # Consecutive words of the question that must appear in the message (a shingle), and
    # how many distinct shingles: 3 shingles of 8 words = at least 10 words in a row.
    shingle_words: int = 8
    min_shingles: int = 3


DEFAULT_POLICY = MatchPolicy()

_DSN_KINDS = frozenset(
    {
        MessageKind.BOUNCE,
        MessageKind.DELAY,
        MessageKind.READ_RECEIPT,
        MessageKind.COMPLAINT,
    }
)
_ALNUM_RUN = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"\w+")
_QUOTE_MARKS = re.compile(r"^[ \t>|]+", re.MULTILINE)
_SUBJECT_LINE = re.compile(r"^subject:[ \t]*(.*(?:\r?\n[ \t]+.*)*)", re.IGNORECASE | re.MULTILINE)


def find_tokens(
    text: str, known: Collection[str], lengths: Sequence[int] | None = None
) -> list[str]:
    """Known tokens that occur in text, case-insensitive, in order of first appearance.

    A token counts as a whole alphanumeric run ("fraga+TOKEN@…", "probe.TOKEN@…") or, for
    a local part a person retyped without the "+", anywhere inside a longer run.
    ``lengths`` (the distinct token lengths) saves a pass over ``known`` per call.
    """
    if not known:
        return []
    sizes = sorted(set(lengths)) if lengths is not None else sorted({len(t) for t in known})
    shortest = sizes[0] if sizes else 0
    found: list[str] = []
    for run in _ALNUM_RUN.findall(text.lower()):
        if len(run) < shortest:  # most runs are short words; no token fits in them
            continue
        for token in _tokens_in_run(run, known, sizes):
            if token not in found:
                found.append(token)
    return found


def _tokens_in_run(run: str, known: Collection[str], lengths: Sequence[int]) -> Iterator[str]:
    if run in known:
        yield run
        return
    for length in lengths:
        for start in range(len(run) - length + 1):
            piece = run[start : start + length]
            if piece in known:
                yield piece


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().strip(".>").lower() or None


def same_organisation(sender_domain: str, target_domain: str) -> bool:
    """Equal domains, or one is a subdomain of the other (mail.lund.se and lund.se)."""
    return (
        sender_domain == target_domain
        or sender_domain.endswith("." + target_domain)
        or target_domain.endswith("." + sender_domain)
    )


def base_address(address: str) -> str:
    """fraga+token@host -> fraga@host (RFC 5233 subaddress removed), lower case."""
    local, at, host = address.lower().rpartition("@")
    if not at:
        return address.lower()
    return f"{local.split('+', 1)[0]}@{host}"


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(_QUOTE_MARKS.sub(" ", text)))


def _shingles(words: Sequence[str], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(len(words) - size + 1):
        yield tuple(words[start : start + size])


def _known_shingles(
    words: Sequence[str], vocabulary: Collection[str], size: int
) -> Iterator[tuple[str, ...]]:
    """The shingles of runs of known words only; the others cannot be in the index.

    A bounce or a long thread has thousands of words the questions never use (headers,
    signatures, DKIM data): skipping them makes quoted-text matching cheap.
    """
    run: list[str] = []
    for word in words:
        if word in vocabulary:
            run.append(word)
        elif run:
            yield from _shingles(run, size)
            run = []
    yield from _shingles(run, size)


class ProbeIndex(Sequence[ProbeCandidate]):
    """Probes with look-up tables for every matching key; build once, match many."""

    def __init__(self, probes: Iterable[ProbeCandidate], policy: MatchPolicy = DEFAULT_POLICY):
        self._probes: tuple[ProbeCandidate, ...] = tuple(probes)
        self._shingle_words = policy.shingle_words
        self.by_token: dict[str, ProbeCandidate] = {}
        self.by_message_id: dict[str, ProbeCandidate] = {}
        self.by_subject: dict[str, list[ProbeCandidate]] = defaultdict(list)
        self.by_domain: dict[str, list[ProbeCandidate]] = defaultdict(list)
        for probe in self._probes:
            self.by_token[probe.token.lower()] = probe
            self.by_message_id[probe.message_id.strip().lower()] = probe
            self.by_subject[normalize_subject(probe.subject)].append(probe)
            target_domain = domain_of(probe.target_address)
            if target_domain:
                self.by_domain[target_domain].append(probe)
        self.token_lengths: tuple[int, ...] = tuple(sorted({len(t) for t in self.by_token}))

    def tokens_in(self, text: str) -> list[str]:
        return find_tokens(text, self.by_token, self.token_lengths)

    @overload
    def __getitem__(self, index: int) -> ProbeCandidate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ProbeCandidate]: ...
    def __getitem__(self, index: int | slice) -> ProbeCandidate | Sequence[ProbeCandidate]:
        return self._probes[index]

    def __len__(self) -> int:
        return len(self._probes)

    @cached_property
    def by_shingle(self) -> dict[tuple[str, ...], list[ProbeCandidate]]:
        """Question-text shingles; built on first use (only unmatched mail needs it)."""
        table: dict[tuple[str, ...], list[ProbeCandidate]] = defaultdict(list)
        for probe in self._probes:
            for shingle in set(_shingles(_words(probe.body), self._shingle_words)):
                table[shingle].append(probe)
        return table

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """Every word of every question: a shingle with any other word cannot match."""
        return frozenset(word for shingle in self.by_shingle for word in shingle)

    @cached_property
    def by_parent_domain(self) -> dict[str, list[ProbeCandidate]]:
        """Probes under each proper parent domain of their target's (lund.se for e.lund.se)."""
        table: dict[str, list[ProbeCandidate]] = defaultdict(list)
        for domain, probes in self.by_domain.items():
            labels = domain.split(".")
            for cut in range(1, len(labels)):
                table[".".join(labels[cut:])].extend(probes)
        return table

    def for_domain(self, sender_domain: str) -> list[ProbeCandidate]:
        found = list(self.by_domain.get(sender_domain, ()))
        labels = sender_domain.split(".")
        for cut in range(1, len(labels) - 1):
            found.extend(self.by_domain.get(".".join(labels[cut:]), ()))
        if not found:  # target on a subdomain of the sender's domain
            found = list(self.by_parent_domain.get(sender_domain, ()))
        return found


@dataclass(frozen=True)
class _Context:
    msg: ParsedMessage
    index: ProbeIndex
    received_at: datetime
    policy: MatchPolicy

    def arrived_after(self, probe: ProbeCandidate) -> bool:
        return probe.sent_at <= self.received_at

    def within(self, probe: ProbeCandidate, window: timedelta) -> bool:
        return self.received_at - window <= probe.sent_at <= self.received_at

    @cached_property
    def sender_domain(self) -> str | None:
        return domain_of(self.msg.from_address)

    @cached_property
    def recipients(self) -> tuple[str, ...]:
        msg = self.msg
        return tuple(a.lower() for a in (*msg.to, *msg.cc, *msg.delivered_to) if a)


_Rule = Callable[[_Context], ProbeCandidate | None]


def match_message(
    msg: ParsedMessage,
    kind: MessageKind,
    probes: Sequence[ProbeCandidate],
    *,
    received_at: datetime,
    policy: MatchPolicy = DEFAULT_POLICY,
) -> Match:
    """The probe a message belongs to and how it was found, or NO_MATCH."""
    if kind is MessageKind.BULK or not probes:
        return NO_MATCH
    index = _index_for(probes, policy)
    context = _Context(msg, index, received_at, policy)
    for method, rule in _rules(kind):
        probe = rule(context)
        if probe is not None:
            return Match(probe_token=probe.token, method=method)
    return NO_MATCH


_last_index: list[tuple[tuple[ProbeCandidate, ...], MatchPolicy, ProbeIndex]] = []


def _index_for(probes: Sequence[ProbeCandidate], policy: MatchPolicy) -> ProbeIndex:
    """The given index, or one built for these probes; the last one built for a tuple is
    reused when the same tuple comes again (a tuple of frozen values cannot change)."""
    if isinstance(probes, ProbeIndex):
        return probes
    if not isinstance(probes, tuple):
        return ProbeIndex(probes, policy)
    if _last_index and _last_index[0][0] is probes and _last_index[0][1] == policy:
        return _last_index[0][2]
    index = ProbeIndex(probes, policy)
    _last_index[:] = [(probes, policy, index)]
    return index


def _rules(kind: MessageKind) -> list[tuple[MatchMethod, _Rule]]:
    rules: list[tuple[MatchMethod, _Rule]] = [(MatchMethod.ADDRESS, _by_address)]
    if kind in _DSN_KINDS:
        rules.append((MatchMethod.DSN_ORIGINAL, _by_returned_copy))
    rules += [
        (MatchMethod.IN_REPLY_TO, _by_in_reply_to),
        (MatchMethod.REFERENCES, _by_references),
        (MatchMethod.SUBJECT, _by_subject),
        (MatchMethod.QUOTED_TEXT, _by_quoted_text),
        (MatchMethod.SENDER_WINDOW, _by_sender_window),
    ]
    return rules


def _first_arrived(
    context: _Context, probes: Iterable[ProbeCandidate | None]
) -> ProbeCandidate | None:
    for probe in probes:
        if probe is not None and context.arrived_after(probe):
            return probe
    return None


def _by_address(context: _Context) -> ProbeCandidate | None:
    index = context.index
    tokens = index.tokens_in(" ".join(a.split("@", 1)[0] for a in context.recipients))
    return _first_arrived(context, (index.by_token[t] for t in tokens))


def _by_message_ids(context: _Context, ids: Iterable[str]) -> ProbeCandidate | None:
    table = context.index.by_message_id
    return _first_arrived(context, (table.get(i.strip().lower()) for i in ids))


def _by_in_reply_to(context: _Context) -> ProbeCandidate | None:
    return _by_message_ids(context, context.msg.in_reply_to)


def _by_references(context: _Context) -> ProbeCandidate | None:
    # The newest reference first: the chain's end is closest to this reply.
    return _by_message_ids(context, reversed(context.msg.references))


def _by_returned_copy(context: _Context) -> ProbeCandidate | None:
    msg, index = context.msg, context.index
    ids = [i for i in (msg.returned_message_id, msg.original_envelope_id) if i]
    found = _by_message_ids(context, ids + [f"<{i.strip('<>')}>" for i in ids])
    if found is not None:
        return found
    texts = " ".join(filter(None, (msg.original_envelope_id, msg.returned_headers_text)))
    found = _first_arrived(context, (index.by_token[t] for t in index.tokens_in(texts)))
    return found if found is not None else _by_failed_recipient(context)


def _by_failed_recipient(context: _Context) -> ProbeCandidate | None:
    """The failed recipient is the probe's target and the returned subject is its subject."""
    returned = _returned_subject(context.msg.returned_headers_text)
    if returned is None:
        return None
    failed = {s.recipient.lower() for s in context.msg.delivery_statuses if s.recipient}
    subject = normalize_subject(returned)
    candidates = [
        p
        for p in context.index.by_subject.get(subject, ())
        if p.target_address.lower() in failed and context.arrived_after(p)
    ]
    return _latest(candidates)


def _returned_subject(text: str) -> str | None:
    found = _SUBJECT_LINE.search(text)
    if found is None:
        return None
    raw = re.sub(r"\r?\n[ \t]+", " ", found.group(1)).strip()
    try:
        return str(make_header(decode_header(raw)))
    except (ValueError, LookupError, MessageError):  # bad base64 or charset names in words
        return raw


def _latest(probes: Iterable[ProbeCandidate]) -> ProbeCandidate | None:
    return max(probes, key=lambda p: p.sent_at, default=None)


def _by_subject(context: _Context) -> ProbeCandidate | None:
    """Equal normalised subject among probes to the sender's organisation or our address.

    Within the sender's organisation the latest probe wins: a municipality that is asked
    the same question twice within the window answers the open one. Without that tie to the
    sender, only a subject that exactly one probe in the window carries is good enough.
    """
    msg = context.msg
    variants = [v for s in (msg.thread_topic, msg.subject) if s for v in subject_variants(s)]
    window = context.policy.subject_window
    for variant in dict.fromkeys(variants):
        in_window = [
            p for p in context.index.by_subject.get(variant, ()) if context.within(p, window)
        ]
        found = _pick_for_sender(context, in_window)
        if found is not None:
            return found
    return None


def _pick_for_sender(context: _Context, probes: list[ProbeCandidate]) -> ProbeCandidate | None:
    if not probes:
        return None
    sender = context.sender_domain
    same_org = [
        p
        for p in probes
        if sender and (d := domain_of(p.target_address)) and same_organisation(sender, d)
    ]
    if same_org:
        return _latest(same_org)
    recipients = set(context.recipients)
    addressed = [
        p
        for p in probes
        if p.reply_address.lower() in recipients or base_address(p.reply_address) in recipients
    ]
    if len(addressed) == 1:
        return addressed[0]
    return probes[0] if len(probes) == 1 else None


def _message_words(msg: ParsedMessage) -> list[str]:
    text = msg.text
    if msg.returned_headers_text:
        text = f"{text}\n{msg.returned_headers_text}"
    return _words(text)


def _by_quoted_text(context: _Context) -> ProbeCandidate | None:
    """The probe whose question is quoted: most distinct shared shingles, clear winner."""
    table = context.index.by_shingle
    size = context.policy.shingle_words
    hits: dict[str, int] = defaultdict(int)
    probes: dict[str, ProbeCandidate] = {}
    known = context.index.vocabulary
    for shingle in set(_known_shingles(_message_words(context.msg), known, size)):
        for probe in table.get(shingle, ()):
            if context.arrived_after(probe):
                hits[probe.token] += 1
                probes[probe.token] = probe
    qualified = [t for t, n in hits.items() if n >= context.policy.min_shingles]
    if not qualified:
        return None
    best = max(hits[t] for t in qualified)
    leaders = [probes[t] for t in qualified if hits[t] == best]
    if len(leaders) == 1:
        return leaders[0]
    return _named_target(context, leaders) or _pick_for_sender(context, leaders)


def _named_target(context: _Context, leaders: list[ProbeCandidate]) -> ProbeCandidate | None:
    """Among probes quoting the same question, the one whose target address is quoted too.

    A forward chain quotes the municipality's own header block ("Till: kontaktcenter@…"),
    which tells the copies of one question sent to many municipalities apart.
    """
    text = context.msg.text.lower()
    named = [p for p in leaders if p.target_address.lower() in text]
    targets = {p.target_address.lower() for p in named}
    return _latest(named) if len(targets) == 1 else None


def _by_sender_window(context: _Context) -> ProbeCandidate | None:
    sender = context.sender_domain
    if sender is None:
        return None
    window = context.policy.sender_window
    fitting = {p.token: p for p in context.index.for_domain(sender) if context.within(p, window)}
    return next(iter(fitting.values())) if len(fitting) == 1 else None
