"""Does a reply answer the question, only refer the asker elsewhere, or only hold?

Each sentence of the answer body is read on its own, first rule that fits:

1. holding: it says the question was forwarded, registered, will be answered later, or that
   someone needs to find out first ("jag har skickat din fråga vidare", "vi återkommer");
2. referral: it sends the asker elsewhere ("kontakta", "vänd dig till", "du når dem på
   telefon", "finns på vår webbplats", "felanmäl", "besvaras av");
3. courtesy: thanks, welcome, wishes, or a case number to quote;
4. answer: it opens with yes or no ("Ja, …", "Nej tyvärr, …"), or it speaks of the asked-for
   thing: a content word of the question recurs in it, compared by Swedish stem
   (snowball), so "förskola", "förskolan" and "förskolor" meet;
5. anything else is neutral (an instruction such as "Uppge gärna adressen").

The reply is ``answered`` when one sentence answers, else ``holding`` when one holds (a
holding reply that adds a referral or a link still holds), else ``referred`` when one
refers, else ``answered`` (a short reply without any cue, such as "Det går bra.").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache

import snowballstemmer

from monitor.domain.model import AnswerKind

_HOLDING = re.compile(
    r"\b(?:skickat|skickats|skickad|skickar|lämnat|lämnats|lämnad|överlämnat|överlämnats"
    r"|förmedlat|förmedlats|sänt|sänts|gått|gick)\b[^.!?]{0,60}\bvidare\b"
    r"|\bvidarebefordra\w*"
    r"|\b(?:din|er|frågan|mejlet|ärendet)\b[^.!?]{0,40}\b(?:har|är) (?:nu )?(?:skickats|skickad"
    r"|lämnats|lämnad|överlämnats|överlämnad|gått|förmedlats|förmedlad) (?:till|över)\b"
    r"|\bhar (?:tagit emot|mottagit|fått in|registrerat|diariefört)\b"
    r"|\b(?:tagits emot|registrerats|diarieförts|är registrerad|är mottagen)\b"
    # "vi återkommer" is the municipality's promise; "återkom gärna" is the asker's.
    r"|(?<!du )(?<!ni )\båterkommer\b|\båterkomma (?:till dig|till er|med)\b"
    r"|\båterkoppla\w*|\bhör av (?:sig|mig|oss)\b"
    r"|\b(?:kontaktar|ringer|mejlar|svarar) (?:dig|er) (?:så snart|inom|senast|när)\b"
    r"|\b(?:de|hon|han|vi|någon|handläggaren|handläggarna) (?:kontaktar|ringer|mejlar) (?:dig|er)\b"
    r"|\bkommer (?:att )?(?:kontakta|ringa|mejla|svara) (?:dig|er)\b|\bbli kontaktad\b"
    r"|\bbett\b[^.!?]{0,60}\b(?:svara|kontakta|höra av|återkomma|ringa)\b"
    r"|\b(?:du|ni) (?:får|kommer att få|ska få) (?:ett )?(?:svar|besked)\b"
    r"|\b(?:svar|besked) (?:inom|senast|så snart|under|i början|nästa)\b"
    r"|\b(?:stämma av|stämmer av|undersöka|undersöker|utreda|utreder|se över|ser över|sett över"
    r"|kolla upp|kollar upp|ta reda på|tar reda på|titta närmare|tittar närmare)\b"
    r"|\b(?:jag|vi) (?:behöver|måste|ska) (?:först )?(?:kontrollera|titta|se|kolla)\b"
    r"|\b(?:vi|jag) (?:tittar|kollar|ser) på (?:det|detta|din fråga|ärendet)\b"
    r"|\bär (?:ledig|på semester|sjuk|tjänstledig|borta)\b"
)
_REFERRAL = re.compile(
    r"\bkontakta\b|\bkontaktar du\b|\bkontakt med\b|\bkontaktuppgifter\b"
    r"|\bvänd(?:a)? (?:dig|er)\b|\bhör av (?:dig|er)\b|\bring(?:a|er)?\b"
    r"|\b(?:du|ni) når\b|\bnår (?:du|ni)\b|\bnås (?:på|via)\b|\bhänvisa\w*"
    r"|\b(?:besvaras|handläggs|hanteras|sköts|administreras|behandlas) (?:av|hos)\b"
    r"|\bansvarar för\b|\bär ansvarig\w* för\b"
    r"|\b(?:vår|kommunens|stadens|regionens|deras|dess) (?:webbplats|hemsida|webbsida)"
    r"|\b(?:mer|all|övrig) information\b|\bläs(?:a)? mer\b|\bkan (?:du|ni) läsa\b"
    r"|\bfelanmä\w*|\bmejla\b|\be-?posta\b"
    r"|\bskicka (?:ett |en )?(?:e-?post|mejl|mail|e-?brev|meddelande|fråga) till\b"
    r"|\bpå telefon\b|\btelefonnummer\b|\btelefontid\b|\b(?:fråga|frågor) för\b"
)
_COURTESY = re.compile(
    r"^(?:tack|bra fråga|välkommen|välkomna|hoppas|ha en|trevlig|lycka till|hej|god |ursäkta"
    r"|förlåt|vi ber om ursäkt|allt gott)"
    r"|\b(?:ärendenummer|ärendenr|diarienummer|dnr|referensnummer)\b"
)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
# A sentence that is little more than a link ("Gör en felanmälan här: https://…") points
# the asker elsewhere.
_LINK_SENTENCE_WORDS = 6
_YES_NO = re.compile(r"^\W*(?:ja|nej|jo|javisst|absolut|visst|tyvärr)\b")
_WORD = re.compile(r"[^\W\d_]+")
_MIN_STEM = 3
_MIN_COMPOUND_PART = 5
_STOPWORD_TEXT = """
    alla allt alltid andra annan annat att av bara bli blir bor borde bra både där därför
    då de dem den denna deras dess det detta dig din dina ditt du där efter eftersom eller
    en er era ert ett fast fick fin finns fler flera från får fått för före förra gjorde
    gå går gärna göra gör ha hade han hans har hela helt henne hennes hit hon honom hur här
    i ifall igen in inga ingen inget inne inom inte ja jag kan kanske kommer kunde kunna
    man med mellan men mer mig min mina mitt mot mycket många måste ni nej nog nu när någon
    något några och också om oss på redan rätt sedan sig sin sina sitt ska skulle själv
    som så sådan sådana tack till tills under upp ut utan vad var vara varför varit vem
    vi vid vilka vilken vilket vill våra vår vårt väl än ändå är även över
    hej hälsningar mvh vänliga vänlig hälsning undrar fråga frågor gäller behöver
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class SentenceRole(StrEnum):
    HOLDING = "holding"
    REFERRAL = "referral"
    COURTESY = "courtesy"
    YES_NO = "yes_no"
    ON_TOPIC = "on_topic"
    NEUTRAL = "neutral"


@lru_cache(maxsize=1)
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("swedish")


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    stem: str = _stemmer().stemWord(word)
    return stem


def content_stems(text: str) -> frozenset[str]:
    """Swedish stems of the text's content words (function words and short words left out)."""
    words = (word.casefold() for word in _WORD.findall(text))
    stems = (_stem(word) for word in words if word not in _STOPWORDS)
    return frozenset(stem for stem in stems if len(stem) >= _MIN_STEM)


@lru_cache(maxsize=256)
def _question_stems(question: str) -> frozenset[str]:
    # A probe's question is assessed once for each of its replies.
    return content_stems(question)


def _meets(stems: Iterable[str], question: frozenset[str]) -> bool:
    """A stem is the question's, or one holds the other as a compound part ("gata" in
    "villagator" -- parts of at least five letters, so short stems match only whole)."""
    for stem in stems:
        if stem in question:
            return True
        if len(stem) >= _MIN_COMPOUND_PART and any(
            len(asked) >= _MIN_COMPOUND_PART and (asked in stem or stem in asked)
            for asked in question
        ):
            return True
    return False


def sentences(body: str) -> list[str]:
    """The body's sentences: paragraphs split after ".", "!" or "?" (a colon keeps a link
    with the words that introduce it)."""
    found: list[str] = []
    for paragraph in _PARAGRAPH.split(body.replace("\r\n", "\n")):
        joined = " ".join(paragraph.split())
        found.extend(piece for piece in _SENTENCE_END.split(joined) if _WORD.search(piece))
    return found


def _is_link_sentence(sentence: str) -> bool:
    if not _URL.search(sentence):
        return False
    return len(_WORD.findall(_URL.sub(" ", sentence))) <= _LINK_SENTENCE_WORDS


def sentence_role(sentence: str, question: frozenset[str]) -> SentenceRole:
    """The role of one sentence (see the module docstring)."""
    sentence = sentence.casefold()  # the cue patterns are written in lower case
    if _HOLDING.search(sentence):
        return SentenceRole.HOLDING
    if _REFERRAL.search(sentence) or _is_link_sentence(sentence):
        return SentenceRole.REFERRAL
    if _COURTESY.search(sentence):
        return SentenceRole.COURTESY
    if _YES_NO.match(sentence):
        return SentenceRole.YES_NO
    if _meets(content_stems(sentence), question):
        return SentenceRole.ON_TOPIC
    return SentenceRole.NEUTRAL


def answer_kind(body: str, question: str) -> tuple[AnswerKind, str]:
    """The kind of answer the body gives, and the reason code that decided it."""
    asked = _question_stems(question)
    roles = {sentence_role(sentence, asked) for sentence in sentences(body)}
    if SentenceRole.YES_NO in roles:
        return AnswerKind.ANSWERED, "yes-no-answer"
    if SentenceRole.ON_TOPIC in roles:
        return AnswerKind.ANSWERED, "answer-on-question-terms"
    if SentenceRole.HOLDING in roles:
        return AnswerKind.HOLDING, "holding-only"
    if SentenceRole.REFERRAL in roles:
        return AnswerKind.REFERRED, "referral-only"
    return AnswerKind.ANSWERED, "no-referral-or-holding"
