"""Words as the query language sees them: tokenising, letter folding and Swedish stemming.

Query terms and article text go through the same functions, so a term and a word in an
article compare equal exactly when the user would expect them to.
"""

from __future__ import annotations

import re
import unicodedata

import snowballstemmer

# A word is a run of letters and digits. Everything else separates words, so the parts of
# "CSTO-styrkorna", "CSTO:s" and "Kazakstan-Ryssland" are words of their own.
WORD_RE = re.compile(r"[^\W_]+")

# The punctuation of most texts: ASCII (translated to spaces byte by byte) and the wider
# marks of Swedish and English typography.
_ASCII_SEPARATORS = bytes(code for code in range(128) if not chr(code).isalnum())
_ASCII_PUNCTUATION = bytes.maketrans(_ASCII_SEPARATORS, b" " * len(_ASCII_SEPARATORS))
_WIDE_PUNCTUATION = "–—”“’‘«»…•"

# å, ä and ö are letters of their own in Swedish, not accented a and o: keep these marks.
_KEPT_MARKS = frozenset({("a", "\u030a"), ("a", "\u0308"), ("o", "\u0308")})
# Letters without a decomposition that Swedish writers treat as their Swedish or plain twin
# (Støre = Störe, Łukasz = Lukasz).
_TWINS = str.maketrans({"ø": "ö", "æ": "ä", "ł": "l", "đ": "d", "ı": "i"})

_CACHE_LIMIT = 200_000
_fold_cache: dict[str, str] = {}
_stem_cache: dict[str, str] = {}
_stemmer = snowballstemmer.stemmer("swedish")


def nfc(text: str) -> str:
    """The text in composed form, so that 'é' typed as e + accent is one letter."""
    if unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def words(text: str) -> list[str]:
    """The words of a text, as written."""
    return split_words(nfc(text))


def split_words(text: str) -> list[str]:
    """`words` of a text already in NFC form: what WORD_RE finds, found faster."""
    # Every character that is not a letter or digit separates words, so turning the usual
    # punctuation into spaces changes no word; when only letters, digits and white space are
    # left (as in most news text), str.split finds the words with no regex and no Python
    # step per word.
    for mark in _WIDE_PUNCTUATION:
        if mark in text:
            text = text.replace(mark, " ")
    encoded = text.encode("utf-8", "surrogatepass")  # lone surrogates do occur
    chunks = encoded.translate(_ASCII_PUNCTUATION).decode("utf-8", "surrogatepass").split()
    if "".join(chunks).isalnum():  # (str.isalnum is exactly the regex's "letter or digit")
        return chunks
    found: list[str] = []
    for chunk in chunks:
        if chunk.isalnum():
            found.append(chunk)
        else:
            found += WORD_RE.findall(chunk)
    return found


def fold(word: str) -> str:
    """Lower case, with accents removed from Latin letters other than å, ä and ö."""
    folded = _fold_cache.get(word)
    if folded is None:
        folded = fold_text(word)
        _remember(_fold_cache, word, folded)
    return folded


def fold_text(text: str) -> str:
    """Uncached `fold`, for query text and other one-off strings."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    return _drop_accents(lowered.translate(_TWINS))


def stem(folded: str) -> str:
    """The Snowball Swedish stem of a folded word: 'kazakstans' -> 'kazakstan'."""
    stemmed = _stem_cache.get(folded)
    if stemmed is None:
        stemmed = _stemmer.stemWord(folded)
        _remember(_stem_cache, folded, stemmed)
    return stemmed


def _drop_accents(text: str) -> str:
    kept: list[str] = []
    base = ""
    for char in unicodedata.normalize("NFD", text):
        if not unicodedata.combining(char):
            base = char
            kept.append(char)
        elif not (base.isascii() and base.isalpha()) or (base, char) in _KEPT_MARKS:
            # Marks on non-Latin letters (Cyrillic й, ё) are part of the word as written.
            kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def _remember(cache: dict[str, str], key: str, value: str) -> None:
    # News vocabulary is open-ended; start over rather than grow without bound.
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
