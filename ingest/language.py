"""Which of the redactor's languages a text is in: "en", "es", "ru" or "other".

Fast, offline and deterministic. The script decides first (mostly Cyrillic → "ru"; a
non-Latin script → "other"); Latin text is scored by function words and telling letters
(ñ, ã, ß …) of English, Spanish and the languages most often confused with them
(Portuguese, Catalan, French, Italian, German), so French prose is "other", not
Spanish. Only text with no such signal, or a tie between look-alikes, goes to
langdetect (seeded), and then only when it has enough letters to judge.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

LANGUAGES: tuple[str, ...] = ("en", "es", "ru")
OTHER = "other"

# Below this many letters langdetect guesses (often "tr" or "it" for a Spanish phrase);
# such text keeps the default.
MIN_LANGDETECT_LETTERS = 20

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the a an and or of to in on at for with is are was were be been it this that "
        "these those from by as not but if then than you we they he she his her their "
        "our your has have had will would can could should do does did what which who "
        "when where how there here all any each some no into about after before over "
        "please use set run".split()
    ),
    "es": frozenset(
        "a el la los las un una unos unas y o de del al en con por para es son está están "
        "fue ser se que no su sus le les lo como más pero si sin sobre entre hasta desde "
        "este esta estos estas ese esa hay muy también cuando donde quien cual ya nos "
        "usted ustedes después antes todo todos cada según dos tres hoy ahora aquí bien "
        "gracias hola favor nombre".split()
    ),
    "pt": frozenset(
        "o os as um uma e ou do da dos das em no na nos nas com por para é são não se "
        "que seu sua mais mas foi ao à pelo pela também você isso este esta".split()
    ),
    "ca": frozenset(
        "el la els les un una i o de del dels en amb per és són no es que més però al "
        "aquest aquesta també això hi ha".split()
    ),
    "fr": frozenset(
        "le la les un une et ou de du des en dans avec pour par est sont pas ne que qui "
        "au aux ce cette ces il elle nous vous ils sur plus mais été être se sa son".split()
    ),
    "it": frozenset(
        "il lo la gli le un una e o di del della dei delle in con per è sono non che "
        "si al alla nel nella anche più ma questo questa".split()
    ),
    "de": frozenset(
        "der die das den dem des ein eine einen und oder zu mit von für auf ist sind "
        "nicht sich auch wir sie es im bei aus wird werden kann".split()
    ),
}
# Letters that point to one candidate, as a weight per occurrence: ñ ¿ ¡ are Spanish
# only; á í ó ú are shared with Portuguese and Catalan, so they count for less.
_LETTER_HINTS: dict[str, dict[str, float]] = {
    "es": {"ñ": 1.0, "¿": 1.0, "¡": 1.0, "á": 0.3, "í": 0.3, "ó": 0.3, "ú": 0.3},
    "pt": {"ã": 1.0, "õ": 1.0, "ç": 0.3, "ê": 0.3, "ô": 0.3},
    "fr": {"è": 0.5, "ê": 0.3, "à": 0.3, "ù": 1.0, "œ": 1.0, "ç": 0.3},
    "ca": {"·": 1.0, "ò": 0.5, "à": 0.3, "è": 0.3},
    "de": {"ä": 1.0, "ö": 1.0, "ü": 0.5, "ß": 1.0},
}
_WORD = re.compile(r"[^\W\d_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_NON_RUSSIAN_CYRILLIC = re.compile(r"[іїєґўѓќђћџљњѕј]", re.IGNORECASE)
_ADDRESS = re.compile(r"\S+@\S+|\w+://\S+|www\.\S+")
_LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f]")

_LANGDETECT_LOCK = threading.Lock()
_LANGDETECT_READY = False


def detect_language(text: str, default: str = OTHER) -> str:
    """Return "en", "es", "ru" or "other" for `text`; `default` when there is no signal.

    Example::

        detect_language("Llame a María al 612 345 678, por favor.")  # "es"
    """
    letters = sum(ch.isalpha() for ch in text)
    if not letters:
        return default
    by_script = script_language(text)
    if by_script is not None:
        return by_script

    scores: Counter[str] = Counter()
    for word in _WORD.findall(text.lower()):
        owners = [lang for lang, words in _STOPWORDS.items() if word in words]
        for lang in owners:
            # A word shared by several languages is weaker evidence for each.
            scores[lang] += 1 / len(owners)
    lowered = text.lower()
    for lang, hints in _LETTER_HINTS.items():
        if weight := sum(hints.get(ch, 0.0) for ch in lowered):
            scores[lang] += weight
    if scores:
        top = max(scores.values())
        tied = [lang for lang, score in scores.items() if score == top]
        if len(tied) == 1:
            return tied[0] if tied[0] in LANGUAGES else OTHER
        # A tie on shared words ("de la") favours the language our users write.
        ours = [lang for lang in tied if lang in LANGUAGES]
        if len(ours) == 1:
            return ours[0]
    # No function word, or a tie: let langdetect judge if there is enough text.
    if letters < MIN_LANGDETECT_LETTERS:
        return default
    guess = _langdetect(text)
    return guess if guess in LANGUAGES else OTHER


def script_language(text: str) -> str | None:
    """ "ru" or "other" when the script alone decides (even for one word), None for
    Latin text (and text without letters), whose language needs words to judge.

    E-mail addresses and URLs are Latin whatever the language around them: skipped."""
    text = _ADDRESS.sub(" ", text)
    letters = sum(ch.isalpha() for ch in text)
    if not letters:
        return None
    if len(_CYRILLIC.findall(text)) * 2 >= letters:
        # Ukrainian, Belarusian, Serbian … use letters Russian lacks.
        return OTHER if len(_NON_RUSSIAN_CYRILLIC.findall(text)) >= 2 else "ru"
    if len(_LATIN.findall(text)) * 2 < letters:
        return OTHER
    return None


def detect_document_language(texts: list[str], default: str = OTHER) -> str:
    """The language holding the most characters among `texts` (ties: en, es, ru, other).

    Short texts (headings, table cells) say little on their own, so a caller can use
    this as the fallback for them.
    """
    chars: Counter[str] = Counter()
    for text in texts:
        if text.strip():
            chars[detect_language(text)] += len(text)
    if not chars:
        return default
    order = (*LANGUAGES, OTHER)
    return max(order, key=lambda lang: (chars[lang], -order.index(lang)))


def _langdetect(text: str) -> str:
    global _LANGDETECT_READY
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    if not _LANGDETECT_READY:
        with _LANGDETECT_LOCK:
            # Seeded: langdetect samples n-grams at random, and equal input must give
            # an equal answer (chunk ids hash the redacted text).
            DetectorFactory.seed = 0
            _LANGDETECT_READY = True
    try:
        return detect(text[:1000])
    except LangDetectException:
        return OTHER
