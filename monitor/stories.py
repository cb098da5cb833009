"""Stories: which earlier article is a syndicated copy of this one.

One TT wire text runs in Aftonbladet, SvD, GP and Sydsvenskan within the hour, each with its
own headline, a rewritten lede, a paragraph more or less. Those copies share most of their
word sequences; two reporters writing about the same event share names and numbers but few
runs of three words. So an article is reduced to its set of word 3-grams (`shingles`), the
set to a MinHash `signature`, and a `StoryIndex` finds the stored article whose estimated
Jaccard similarity is highest and at least the threshold.

Pure: no SQL, no I/O. The caller stores `Signature.to_bytes()` next to the article and
rebuilds the index from those bytes after a restart (`StoryIndex.add_stored`).

What the caller should do with short items: an item of fewer than `MIN_WORDS` words (a
headline, a one-sentence teaser) has too few shingles for the estimate to mean anything, and
headlines about two different events can look alike. Check `comparable(text)` first; if
it is false, do not call `find` or `add`: join it only to an earlier item whose
`body_hash` is equal (a short TT notice under each outlet's own headline), else give it a
story of its own. A wrongly joined story silences an alert,
a wrongly split one only repeats it, so short items are never joined.

Sign the body text only: headlines differ between outlets by design and would only lower
the similarity of true copies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from monitor.rules.text import fold_text, nfc, words

# Tuned on tests/fixtures/stories/labelled.json with bench/stories_quality.py. Words, not
# characters: three words keep copies with a rewritten lede far above the threshold while
# independently written articles about one event stay below a tenth.
SHINGLE_WORDS = 3
NUM_PERM = 128
SEED = 20220105
# In the labelled set copies have a Jaccard similarity of 0.46 and up, separate stories
# about one event at most 0.26 (a next-day follow-up reusing two background paragraphs),
# independently written articles below 0.06; two templated accident notices have 0.34.
# Over 40 permutation seeds the set is grouped without error for every threshold from 0.36
# to 0.47. 0.40 leans high in that range: a wrong join silences an alert, a missed one
# only repeats it.
DEFAULT_THRESHOLD = 0.40
# Below this, texts are headlines and teasers: "Man död i trafikolycka utanför Borås" and
# "... utanför Jönköping" score 0.6, and copies with a rewritten lede score below 0.4.
MIN_WORDS = 50
# Short items join by an exact hash of their words instead (`body_hash`), but only from
# this many words: "Uppdateras." or "Mer information kommer" recur under unrelated headlines.
MIN_HASH_WORDS = 12

# The first byte of every stored signature. Bump it whenever anything that changes the hash
# values changes (shingling, word folding, hash function, seed, num_perm): stored
# signatures are then refused and must be recomputed from the article text.
FORMAT_VERSION = 2  # 1: crc32 word hashes (the first committed version)
_EMPTY = np.uint32(0xFFFFFFFF)


def is_current_signature(blob: bytes) -> bool:
    """Whether stored bytes are a signature of this format (see FORMAT_VERSION)."""
    return len(blob) == 1 + 4 * NUM_PERM and blob[0] == FORMAT_VERSION


class SignatureFormatError(ValueError):
    """Stored signature bytes from another format version or a damaged blob: recompute
    the signature from the article text."""


class Signature:
    """The MinHash of an article's shingles (see `signature`): `num_perm` uint32 hash
    values. It serialises to compact bytes: one version byte and the values little-endian
    (513 bytes at 128)."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: np.ndarray | Sequence[int]) -> None:
        values = np.asarray(hashvalues)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iu":
            raise ValueError(f"a signature is a non-empty row of integers, got {values.dtype} {values.shape}")
        if values.dtype != np.uint32 and (values.min() < 0 or values.max() > _EMPTY):
            raise ValueError("signature hash values must fit in 32 bits")
        self.hashvalues = values.astype(np.uint32)  # a copy: signatures never change

    @classmethod
    def _of(cls, values: np.ndarray) -> Signature:
        # Ours come straight from the permutation arithmetic as uint32: no checks, no copy.
        sig = object.__new__(cls)
        sig.hashvalues = values
        return sig

    def __len__(self) -> int:
        return len(self.hashvalues)

    def jaccard(self, other: Signature) -> float:
        """The estimated Jaccard similarity of the two shingle sets: the share of equal
        hash values (as datasketch's `MinHash.jaccard`)."""
        if len(self) != len(other):
            raise ValueError(f"signatures of {len(self)} and {len(other)} values cannot be compared")
        return float(np.count_nonzero(self.hashvalues == other.hashvalues)) / len(self)

    def to_bytes(self) -> bytes:
        return bytes([FORMAT_VERSION]) + self.hashvalues.astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Signature:
        return cls._of(_decode_values(blob))


def _decode_values(blob: bytes) -> np.ndarray:
    if len(blob) < 5 or blob[0] != FORMAT_VERSION or (len(blob) - 1) % 4:
        raise SignatureFormatError(
            f"signature of {len(blob)} bytes is not format {FORMAT_VERSION}: recompute it from the text"
        )
    return np.frombuffer(blob, dtype="<u4", offset=1).astype(np.uint32)


def shingle_words(text: str) -> list[str]:
    """The words of a text as shingles see them: runs of letters and digits (of the Basic
    Multilingual Plane), each letter folded like watchlist terms (lower case, accents
    dropped except on å, ä and ö). Punctuation goes; numbers stay -- they tell one day's
    templated report from the next."""
    folded, starts, ends = _word_spans(text)
    return ["".join(map(chr, folded[s:e].tolist())) for s, e in zip(starts, ends, strict=True)]


def body_hash(text: str) -> str | None:
    """The identity of a short text for exact-copy joins: a SHA-256 of its words as
    `shingle_words` folds them (case, accents, punctuation and spacing do not count), or
    None below `MIN_HASH_WORDS`. Body only: outlets give one TT notice their own headlines,
    so the stored `content_hash` (title and text) differs between copies."""
    folded = shingle_words(text)
    if len(folded) < MIN_HASH_WORDS:
        return None
    return hashlib.sha256(" ".join(folded).encode("utf-8")).hexdigest()


def comparable(text: str) -> bool:
    """Whether the text has at least `MIN_WORDS` words, i.e. is long enough for
    near-duplicate detection."""
    # It runs on every article, so first the cheap lower bound: a whitespace chunk of only
    # letters and digits is exactly one word, and news text is mostly such chunks.
    chunks = text.split(maxsplit=2 * MIN_WORDS)[: 2 * MIN_WORDS]
    return sum(map(str.isalnum, chunks)) >= MIN_WORDS or len(words(text)) >= MIN_WORDS


def shingles(text: str) -> set[str]:
    """The set of overlapping `SHINGLE_WORDS`-word runs of the text (a shorter text is one
    shingle)."""
    folded = shingle_words(text)
    if len(folded) <= SHINGLE_WORDS:
        return {" ".join(folded)} if folded else set()
    return {" ".join(folded[i : i + SHINGLE_WORDS]) for i in range(len(folded) - SHINGLE_WORDS + 1)}


# Words are found and hashed in numpy, a few array operations per article instead of a
# Python step per word: a table folds every code point of the Basic Multilingual Plane
# (0 for what is not a letter or digit), and a word's hash is the polynomial of its
# folded code points, read off prefix sums. A shingle's hash is the polynomial of its
# words' hashes. Both are stable across processes (hash() is not), and the signature
# pre-mixes every value with fmix32 before the permutations, so their linearity never
# reaches it.
_WORD_BASE = 0x9E3779B97F4A7C15
_SHINGLE_BASE = 0x9E3779B1
_PLANE = 0x10000


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash `signature` gives a shingle (as returned by `shingles`)."""
    value = 0
    for word in shingle.split(" "):
        value = (value * _SHINGLE_BASE + _word_hash(word)) & 0xFFFFFFFF
    return value


def _word_hash(folded_word: str) -> int:
    value = 0
    for char in folded_word:
        value = (value + ord(char)) * _WORD_BASE & 0xFFFFFFFFFFFFFFFF
    return value >> 32


@lru_cache(maxsize=1)
def _fold_table() -> np.ndarray:
    """Folded code point of every BMP character, 0 where it is no letter or digit; the
    last entry stands for everything beyond the BMP. Built on first use (0.1 s)."""
    table = np.zeros(_PLANE + 1, dtype=np.uint64)
    for point in range(_PLANE):
        char = chr(point)
        if char.isalnum():
            # A few composition exclusions fold to two code points; NFC text never has them.
            table[point] = ord(fold_text(char)[0])
    return table


@lru_cache(maxsize=8)
def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """_WORD_BASE to the powers 0..length-1 and their inverses, mod 2**64."""
    inverse = pow(_WORD_BASE, -1, 2**64)
    steps = np.full(length, _WORD_BASE, dtype=np.uint64)
    steps[0] = 1
    backs = np.full(length, inverse, dtype=np.uint64)
    backs[0] = 1
    return np.cumprod(steps, dtype=np.uint64), np.cumprod(backs, dtype=np.uint64)


def _word_spans(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Folded code points of the text and the [start, end) of each word in them."""
    points = np.frombuffer(nfc(text).encode("utf-32-le"), dtype=np.uint32)
    folded = _fold_table()[np.minimum(points, _PLANE)]
    in_word = np.zeros(len(folded) + 2, dtype=bool)  # padded: no word at either end
    np.not_equal(folded, 0, out=in_word[1:-1])
    edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # a start, an end, a start, ...
    return folded, edges[::2], edges[1::2]


def _shingle_hashes(text: str) -> np.ndarray:
    folded, starts, ends = _word_spans(text)
    if len(starts) <= SHINGLE_WORDS:
        joined = " ".join(shingle_words(text))
        return np.array([shingle_hash(joined)] if joined else [], dtype=np.uint32)
    powers, inverses = _powers(max(1 << 14, 1 << len(folded).bit_length()))
    # The sum of c[j] * B**(end-j) over a word is (prefix[end] - prefix[start]) * B**end,
    # with prefix the running sum of c[j] * B**-j: Horner's polynomial for all words at
    # once. Every code point, the last too, is multiplied by B at least once, so each one
    # reaches the top 32 bits that are kept.
    prefix = np.zeros(len(folded) + 1, dtype=np.uint64)
    np.cumsum(folded * inverses[: len(folded)], out=prefix[1:])
    words_hashed = ((prefix[ends] - prefix[starts]) * powers[ends] >> np.uint64(32)).astype(np.uint32)
    count = len(words_hashed) - SHINGLE_WORDS + 1
    value = words_hashed[:count].copy()
    for offset in range(1, SHINGLE_WORDS):
        value = value * np.uint32(_SHINGLE_BASE) + words_hashed[offset : offset + count]
    return value


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine permutations h -> a * h + b (mod 2**32, `a` odd, so each is a bijection)
    drawn as datasketch 2.0 draws its "affine32" scheme: from numpy's RandomState, whose
    stream numpy keeps stable for compatibility. Stored signatures (FORMAT_VERSION 2) were
    computed with these; tests/fixtures/stories/signatures-v2.json holds them to it."""
    draw = np.random.RandomState(SEED)
    a = draw.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = draw.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b[:, np.newaxis]


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer, applied to every shingle hash before the permutations (so
    the linear word and shingle hashes never reach them; datasketch's "affine32" does the
    same)."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def signature(text: str, num_perm: int = NUM_PERM) -> Signature:
    """The MinHash of `shingles(text)` under `shingle_hash` (an empty text gives an empty
    signature, which `StoryIndex` never matches): for each permutation, the least
    `a * fmix32(shingle_hash(s)) + b` over the shingles, on the numpy array of all shingle
    hashes at once.

    The values are what datasketch 2.0's `MinHash(seed=SEED, scheme="affine32",
    hashfunc=shingle_hash).update_batch(shingles(text))` computed when this module used it;
    the tests hold them to stored signatures and to a plain per-shingle reference."""
    hashes = _shingle_hashes(text)
    if hashes.size == 0:
        return Signature._of(np.full(num_perm, _EMPTY))
    a, b = _permutations(num_perm)
    permuted = np.multiply.outer(a, _fmix32(hashes))
    permuted += b
    return Signature._of(permuted.min(axis=1))


def band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the most (fewest stray candidates, fewest bands to store) that
    still makes a pair 0.1 above the threshold a candidate with probability >= 0.98.
    At 0.40 and 128 permutations: 42 bands of 3 rows, so a pair is a candidate with
    probability 0.5 at J = 0.25, 0.9 at 0.38, 0.99 at 0.47 -- and 0.00004 at 0.01."""
    target = min(threshold + 0.1, 1.0)
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - target**rows) ** bands >= 0.98:
            return rows
    return 1


class StoryIndex:
    """MinHash LSH over the signatures of recent articles, kept in numpy arrays.

    Band keys live in one sorted uint64 array with a directory of their top bits (plus a
    dict for the latest additions, merged every `_TAIL_LIMIT`) instead of datasketch's
    MinHashLSH, whose set-per-bucket storage took 5.7 times the memory at the same bands
    (11 KB an article against 2 KB at 20,000; `bench/dedupe.py --compare-lsh` and
    docs/stories.md) for the same candidates, and 6 to 13 times the insert time. Here an article
    costs 4 bytes per permutation (its signature, kept for verification) and about 14
    bytes per band once merged: some 1.2 KB at the defaults. LSH
    candidates are verified with the MinHash Jaccard estimate (the share of equal hash
    values, as `Signature.jaccard`), so a stray band collision never becomes a match.

    `remove` only marks an entry dead; once a fifth of the entries are dead the arrays are
    rebuilt (about 1 s per 100,000 living entries). Not thread-safe: one pipeline owns it.
    """

    _TAIL_LIMIT = 8192  # additions held in the dict before a merge into the sorted arrays

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < 16:
            raise ValueError(f"num_perm must be at least 16, got {num_perm}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.rows = band_rows(threshold, num_perm)
        self.bands = num_perm // self.rows
        rng = np.random.default_rng(SEED)
        self._mix = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._salt = rng.integers(0, 2**63, size=self.bands, dtype=np.uint64)
        self._sigs = np.empty((0, num_perm), dtype=np.uint32)
        self._keys = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._used = 0  # slots handed out, dead ones included
        self._slot_of: dict[int, int] = {}
        self._base_keys = np.empty(0, dtype=np.uint64)
        self._base_slots = np.empty(0, dtype=np.int32)
        self._index_buckets()
        # Band key -> slot for the latest additions; ints only, so the garbage collector
        # never walks it. The rare second slot with an equal band key goes to _tail_more.
        self._tail: dict[int, int] = {}
        self._tail_more: dict[int, list[int]] = {}
        self._tail_slots: list[int] = []
        self._last_values: np.ndarray | None = None
        self._last_band_keys = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: int) -> bool:
        return key in self._slot_of

    @property
    def nbytes(self) -> int:
        """Approximate memory held: arrays by size, the key dicts at ~100 bytes an entry."""
        arrays = (self._sigs, self._keys, self._alive, self._base_keys, self._base_slots, self._bucket_start)
        dict_entries = len(self._slot_of) + len(self._tail_slots) * (self.bands + 1)
        return sum(a.nbytes for a in arrays) + 100 * dict_entries

    # --- queries -----------------------------------------------------------------------

    def find(self, sig: Signature) -> int | None:
        """The key of the stored article most similar to `sig`, if its estimated Jaccard
        similarity is at least the threshold; ties go to the earliest added."""
        found = self.find_all(sig)
        return found[0] if found else None

    def find_all(self, sig: Signature) -> list[int]:
        """The keys of every stored article whose estimated Jaccard similarity to `sig` is
        at least the threshold, most similar first (ties: earliest added first). An edited
        wire copy can be close to two earlier copies that are not close to each other: the
        caller needs all of them to keep their stories one."""
        values = self._values_of(sig)
        if _is_empty(values):
            return []
        slots = self._candidates(values)
        if slots.size == 0:
            return []
        equal = np.count_nonzero(self._sigs[slots] == values, axis=1)
        above = np.flatnonzero(equal >= self.threshold * self.num_perm)
        order = above[np.argsort(-equal[above], kind="stable")]
        return self._keys[slots[order]].tolist()

    def similarity(self, sig: Signature, key: int) -> float:
        """Estimated Jaccard similarity between `sig` and the stored article `key`."""
        stored = self._sigs[self._slot_of[key]]
        return float(np.count_nonzero(stored == self._values_of(sig))) / self.num_perm

    def _candidates(self, values: np.ndarray) -> np.ndarray:
        """Living slots sharing at least one band with `values`, oldest first."""
        band_keys = self._band_keys_of(values)
        found = self._base_slots_with(band_keys)
        tail = self._tail
        in_tail = [key for key in band_keys.tolist() if key in tail]
        if in_tail:
            recent = [tail[key] for key in in_tail]
            for key in in_tail:
                recent += self._tail_more.get(key, ())
            found = np.concatenate([found, np.asarray(recent, dtype=found.dtype)])
        if found.size > 1:
            found = np.unique(found)
        return found[self._alive[found]]

    def _base_slots_with(self, band_keys: np.ndarray) -> np.ndarray:
        """Slots in the sorted arrays having one of `band_keys`. The directory of top bits
        narrows each key to a bucket of a few entries: a binary search over tens of
        millions of keys would wait on memory at every step."""
        if self._base_keys.size == 0:
            return self._base_slots
        top = (band_keys >> self._shift).astype(np.intp)
        lo = self._bucket_start[top]
        sizes = self._bucket_start[top + 1] - lo
        total = int(sizes.sum())
        if total == 0:
            return self._base_slots[:0]
        owner = np.repeat(np.arange(len(band_keys)), sizes)
        at = np.arange(total) + np.repeat(lo - (np.cumsum(sizes) - sizes), sizes)
        return self._base_slots[at[self._base_keys[at] == band_keys[owner]]]

    # --- changes -----------------------------------------------------------------------

    def add(self, key: int, sig: Signature) -> None:
        """Store `sig` under `key` (replacing what the key held)."""
        values = self._values_of(sig)
        if _is_empty(values):
            raise ValueError("empty signature (no words): do not index texts that fail comparable()")
        self.remove(key)
        slot = self._take_slots(1)
        self._sigs[slot] = values
        self._keys[slot] = key
        self._alive[slot] = True
        self._slot_of[key] = slot
        tail = self._tail
        for band_key in self._band_keys_of(values).tolist():
            if band_key in tail:
                self._tail_more.setdefault(band_key, []).append(slot)
            else:
                tail[band_key] = slot
        self._tail_slots.append(slot)
        if len(self._tail_slots) >= self._TAIL_LIMIT:
            self._merge_tail()

    def add_many(self, keys: Sequence[int], values: np.ndarray) -> None:
        """Store many signatures at once: `values` holds one row of hash values per key.
        One sort instead of a dict insert per band -- the path for rebuilding."""
        values = np.ascontiguousarray(values, dtype=np.uint32)
        if values.shape != (len(keys), self.num_perm):
            raise ValueError(f"expected {len(keys)} rows of {self.num_perm} hash values, got {values.shape}")
        if len(set(keys)) != len(keys):
            raise ValueError("add_many got the same key twice")
        for key in keys:
            self.remove(key)
        first = self._take_slots(len(keys))
        slots = np.arange(first, first + len(keys), dtype=np.int32)
        self._sigs[slots] = values
        self._keys[slots] = np.asarray(keys, dtype=np.int64)
        self._alive[slots] = True
        self._slot_of.update(zip(keys, slots.tolist(), strict=True))
        self._insert_sorted(self._band_keys(values), np.repeat(slots, self.bands))

    def add_stored(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Rebuild from what the store keeps: (key, `Signature.to_bytes()`) pairs."""
        keys: list[int] = []
        blobs: list[bytes] = []
        for key, blob in rows:
            keys.append(key)
            blobs.append(blob)
        width = 1 + 4 * self.num_perm
        joined = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        if any(len(blob) != width for blob in blobs) or (joined[::width] != FORMAT_VERSION).any():
            raise SignatureFormatError(
                f"stored signatures must be {width} bytes of format {FORMAT_VERSION}: recompute them"
            )
        values = joined.reshape(len(blobs), width)[:, 1:].copy().view("<u4").astype(np.uint32)
        self.add_many(keys, values)

    def remove(self, key: int) -> bool:
        """Forget `key`; expiry may pass every expired article, indexed or not. Returns
        whether the key was there."""
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return False
        self._alive[slot] = False
        dead = self._used - len(self._slot_of)
        if dead > max(1024, len(self._slot_of) // 4):
            self._compact()
        return True

    # --- storage -----------------------------------------------------------------------

    def _values_of(self, sig: Signature) -> np.ndarray:
        if not isinstance(sig, Signature) or len(sig) != self.num_perm:
            raise ValueError(f"expected a Signature of {self.num_perm} values: use stories.signature()")
        return sig.hashvalues

    def _band_keys_of(self, values: np.ndarray) -> np.ndarray:
        # The pipeline calls find(sig) and then add(key, sig): compute the band keys once.
        if values is not self._last_values:
            banded = values[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
            self._last_values = values
            self._last_band_keys = banded @ self._mix + self._salt
        return self._last_band_keys

    def _band_keys(self, values: np.ndarray) -> np.ndarray:
        """One uint64 per signature and band: the band's hash values combined with odd
        multipliers (wrapping), plus a per-band salt so equal values in different bands
        do not meet. In blocks, so a rebuild never holds more than one widened copy."""
        keys = np.empty((len(values), self.bands), dtype=np.uint64)
        for start in range(0, len(values), 65536):
            block = values[start : start + 65536, : self.bands * self.rows]
            banded = block.reshape(len(block), self.bands, self.rows).astype(np.uint64)
            np.add(banded @ self._mix, self._salt, out=keys[start : start + 65536])
        return keys

    def _take_slots(self, count: int) -> int:
        first = self._used
        needed = first + count
        if needed > len(self._sigs):
            capacity = max(needed, 2 * len(self._sigs), 1024)
            self._sigs = _grown(self._sigs, capacity)
            self._keys = _grown(self._keys, capacity)
            self._alive = _grown(self._alive, capacity)
        self._used = needed
        return first

    def _merge_tail(self) -> None:
        if not self._tail_slots:
            return
        slots = np.asarray(self._tail_slots, dtype=np.int32)
        slots = slots[self._alive[slots]]
        self._tail.clear()
        self._tail_more.clear()
        self._tail_slots.clear()
        self._insert_sorted(self._band_keys(self._sigs[slots]), np.repeat(slots, self.bands))

    def _insert_sorted(self, band_keys: np.ndarray, slots: np.ndarray) -> None:
        band_keys = band_keys.ravel()
        order = np.argsort(band_keys)
        band_keys, slots = band_keys[order], slots[order]
        if self._base_keys.size == 0:
            self._base_keys, self._base_slots = band_keys, slots
        else:
            at = np.searchsorted(self._base_keys, band_keys, side="right")
            self._base_keys = np.insert(self._base_keys, at, band_keys)
            self._base_slots = np.insert(self._base_slots, at, slots)
        self._index_buckets()

    def _index_buckets(self) -> None:
        """Where each bucket of keys sharing their top bits starts: about four keys a
        bucket, so a lookup reads one cache line or two."""
        bits = int(np.clip(np.log2(max(self._base_keys.size, 1) / 4), 8, 26))
        self._shift = np.uint64(64 - bits)
        counts = np.bincount((self._base_keys >> self._shift).astype(np.intp), minlength=2**bits)
        self._bucket_start = np.zeros(2**bits + 1, dtype=np.int64)
        np.cumsum(counts, out=self._bucket_start[1:])

    def _compact(self) -> None:
        """Drop dead slots: renumber the living ones and rebuild the band arrays."""
        self._merge_tail()
        living = np.flatnonzero(self._alive[: self._used]).astype(np.int32)
        keys = self._keys[living]
        values = self._sigs[living]
        self._sigs = values.copy()
        self._keys = keys.copy()
        self._alive = np.ones(len(living), dtype=bool)
        self._used = len(living)
        self._slot_of = dict(zip(keys.tolist(), range(len(living)), strict=True))
        self._base_keys = np.empty(0, dtype=np.uint64)
        self._base_slots = np.empty(0, dtype=np.int32)
        slots = np.arange(len(living), dtype=np.int32)
        self._insert_sorted(self._band_keys(values), np.repeat(slots, self.bands))


def _is_empty(values: np.ndarray) -> bool:
    # The first value settles it for every real signature; the rest only for the empty one.
    return bool(values[0] == _EMPTY) and bool((values == _EMPTY).all())


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
