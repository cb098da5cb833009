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
two different headlines about one event can look alike. Check `comparable(text)` first; if
it is false, do not call `find` or `add` -- give the article a story of its own (exact
copies are already caught by the content hash). A wrongly joined story silences an alert,
a wrongly split one only repeats it, so short items are never joined.

Sign the body text only: headlines differ between outlets by design and would only lower
the similarity of true copies.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from datasketch import LeanMinHash, MinHash

from monitor.rules.text import fold, words

# Tuned on tests/fixtures/stories/labelled.json with bench/stories_quality.py. Words, not
# characters: three words keep copies with a rewritten lede far above the threshold while
# independently written articles about one event stay below a tenth.
SHINGLE_WORDS = 3
NUM_PERM = 128
SEED = 20220105
# Copies in the labelled set score 0.46 and up, separate stories about one event at most
# 0.26 (a follow-up reusing two background paragraphs); independent texts below 0.06.
DEFAULT_THRESHOLD = 0.36
MIN_WORDS = 40

# The first byte of every stored signature. Bump it whenever anything that changes the hash
# values changes (shingling, word folding, hash function, seed, num_perm): stored
# signatures are then refused and must be recomputed from the article text.
FORMAT_VERSION = 1
_SCHEME = "affine32"
_EMPTY = np.uint32(0xFFFFFFFF)


class SignatureFormatError(ValueError):
    """Stored signature bytes from another format version or a damaged blob: recompute
    the signature from the article text."""


class Signature(LeanMinHash):
    """A datasketch LeanMinHash of an article's shingles that serialises to compact bytes:
    one version byte and `num_perm` little-endian uint32 values (513 bytes at 128)."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        return bytes([FORMAT_VERSION]) + self.hashvalues.astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Signature:
        return cls(seed=SEED, hashvalues=_decode_values(blob), scheme=_SCHEME)


def _decode_values(blob: bytes) -> np.ndarray:
    if len(blob) < 5 or blob[0] != FORMAT_VERSION or (len(blob) - 1) % 4:
        raise SignatureFormatError(
            f"signature of {len(blob)} bytes is not format {FORMAT_VERSION}: recompute it from the text"
        )
    return np.frombuffer(blob, dtype="<u4", offset=1).astype(np.uint32)


def shingle_words(text: str) -> list[str]:
    """The words of a text as shingles see them: folded like watchlist terms (lower case,
    accents dropped except on å, ä and ö), punctuation gone, numbers kept -- numbers are
    what tells one day's templated report from the next."""
    return [fold(word) for word in words(text)]


def comparable(text: str) -> bool:
    """Whether the text is long enough for near-duplicate detection (see `MIN_WORDS`)."""
    return len(words(text)) >= MIN_WORDS


def shingles(text: str) -> set[str]:
    """The set of overlapping `SHINGLE_WORDS`-word runs of the text (a shorter text is one
    shingle)."""
    folded = shingle_words(text)
    if len(folded) <= SHINGLE_WORDS:
        return {" ".join(folded)} if folded else set()
    return {" ".join(folded[i : i + SHINGLE_WORDS]) for i in range(len(folded) - SHINGLE_WORDS + 1)}


# A shingle's hash is a polynomial in its words' hashes, so each word is hashed once per
# process and the shingles of an article are hashed in one numpy expression. crc32 is
# stable across processes (hash() is not); datasketch pre-mixes every value with fmix32
# before its permutations, so the linearity of both never reaches the signature.
_SHINGLE_BASE = 0x9E3779B1
_CACHE_LIMIT = 200_000
_word_hashes: dict[str, int] = {}


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash `signature` gives a shingle (as returned by `shingles`)."""
    value = 0
    for word in shingle.split(" "):
        value = (value * _SHINGLE_BASE + _crc32(word)) & 0xFFFFFFFF
    return value


def _crc32(folded_word: str) -> int:
    return zlib.crc32(folded_word.encode("utf-8"))


def _word_hashes_of(text: str) -> np.ndarray:
    found = words(text)
    known = list(map(_word_hashes.get, found))
    if None in known:
        if len(_word_hashes) >= _CACHE_LIMIT:
            _word_hashes.clear()  # news vocabulary is open-ended: start over, never grow
        for word in found:
            if word not in _word_hashes:
                _word_hashes[word] = _crc32(fold(word))
        known = list(map(_word_hashes.__getitem__, found))
    return np.array(known, dtype=np.uint32)


def _shingle_hashes(text: str) -> list[int]:
    hashes = _word_hashes_of(text)
    if len(hashes) <= SHINGLE_WORDS:
        return [shingle_hash(" ".join(shingle_words(text)))] if len(hashes) else []
    base = np.uint32(_SHINGLE_BASE)
    value = hashes[: len(hashes) - SHINGLE_WORDS + 1].copy()
    for offset in range(1, SHINGLE_WORDS):
        value = value * base + hashes[offset : len(hashes) - SHINGLE_WORDS + 1 + offset]
    return value.tolist()


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> np.ndarray:
    # Drawing them costs more than hashing an article; every signature shares one copy.
    return MinHash(num_perm=num_perm, seed=SEED, scheme=_SCHEME).permutations


def signature(text: str, num_perm: int = NUM_PERM) -> Signature:
    """The MinHash of `shingles(text)` under `shingle_hash` (an empty text gives an empty
    signature, which `StoryIndex` never matches)."""
    minhash = MinHash(
        num_perm=num_perm, seed=SEED, hashfunc=int, permutations=_permutations(num_perm), scheme=_SCHEME
    )
    minhash.update_batch(_shingle_hashes(text))
    return Signature(minhash)


def band_rows(threshold: float, num_perm: int) -> int:
    """Rows per LSH band: the most (fewest stray candidates) that still makes a pair 0.1
    above the threshold a candidate with probability >= 0.99."""
    target = min(threshold + 0.1, 1.0)
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - target**rows) ** bands >= 0.99:
            return rows
    return 1


class StoryIndex:
    """MinHash LSH over the signatures of recent articles, kept in numpy arrays.

    Band keys live in one sorted uint64 array (plus a small dict for the latest additions,
    merged in batches) instead of datasketch's MinHashLSH, whose set-per-bucket storage
    takes about 5 KB per article at 16 bands -- 5 GB for a million. Here an article costs
    4 bytes per permutation (its signature, kept for verification) and 12 bytes per band.
    LSH candidates are verified with the MinHash Jaccard estimate (the share of equal hash
    values, as `MinHash.jaccard`), so a stray band collision never becomes a match.

    Not thread-safe: one pipeline owns it.
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
        self._tail: dict[int, list[int]] = {}
        self._tail_slots: list[int] = []

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: int) -> bool:
        return key in self._slot_of

    @property
    def nbytes(self) -> int:
        """Approximate memory held: arrays by size, the key dicts at ~100 bytes an entry."""
        arrays = (self._sigs, self._keys, self._alive, self._base_keys, self._base_slots)
        dict_entries = len(self._slot_of) + len(self._tail_slots) * (self.bands + 1)
        return sum(a.nbytes for a in arrays) + 100 * dict_entries

    # --- queries -----------------------------------------------------------------------

    def find(self, sig: MinHash) -> int | None:
        """The key of the stored article most similar to `sig`, if its estimated Jaccard
        similarity is at least the threshold; ties go to the earliest added."""
        values = self._values_of(sig)
        if (values == _EMPTY).all():
            return None
        slots = self._candidates(values)
        if slots.size == 0:
            return None
        equal = np.count_nonzero(self._sigs[slots] == values, axis=1)
        best = int(np.argmax(equal))
        if equal[best] < self.threshold * self.num_perm:
            return None
        return int(self._keys[slots[best]])

    def similarity(self, sig: MinHash, key: int) -> float:
        """Estimated Jaccard similarity between `sig` and the stored article `key`."""
        stored = self._sigs[self._slot_of[key]]
        return float(np.count_nonzero(stored == self._values_of(sig))) / self.num_perm

    def _candidates(self, values: np.ndarray) -> np.ndarray:
        band_keys = self._band_keys(values[np.newaxis, :])[0]
        lo = np.searchsorted(self._base_keys, band_keys, side="left")
        hi = np.searchsorted(self._base_keys, band_keys, side="right")
        found = [self._base_slots[lo[i] : hi[i]] for i in np.flatnonzero(hi > lo)]
        recent = [self._tail.get(k) for k in band_keys.tolist()]
        found += [np.asarray(slots, dtype=np.int32) for slots in recent if slots]
        if not found:
            return np.empty(0, dtype=np.int32)
        slots = np.unique(np.concatenate(found))
        return slots[self._alive[slots]]

    # --- changes -----------------------------------------------------------------------

    def add(self, key: int, sig: MinHash) -> None:
        """Store `sig` under `key` (replacing what the key held)."""
        values = self._values_of(sig)
        if (values == _EMPTY).all():
            raise ValueError("empty signature (no words): do not index texts that fail comparable()")
        self.remove(key)
        slot = self._take_slots(1)
        self._sigs[slot] = values
        self._keys[slot] = key
        self._alive[slot] = True
        self._slot_of[key] = slot
        for band_key in self._band_keys(values[np.newaxis, :])[0].tolist():
            self._tail.setdefault(band_key, []).append(slot)
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
        self._merge_tail()
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

    def _values_of(self, sig: MinHash) -> np.ndarray:
        if len(sig.hashvalues) != self.num_perm or getattr(sig, "scheme", None) != _SCHEME:
            raise ValueError(f"signature must be an {_SCHEME} MinHash of {self.num_perm} permutations")
        if sig.seed != SEED:
            raise ValueError(f"signature seed {sig.seed} is not {SEED}: use stories.signature()")
        return sig.hashvalues

    def _band_keys(self, values: np.ndarray) -> np.ndarray:
        """One uint64 per band and row: the band's hash values combined with odd
        multipliers (wrapping), plus a per-band salt so equal values in different bands
        do not meet."""
        used = values[:, : self.bands * self.rows].reshape(len(values), self.bands, self.rows)
        mixed = (used.astype(np.uint64) * self._mix).sum(axis=2, dtype=np.uint64)
        return mixed + self._salt

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
        self._tail_slots.clear()
        self._insert_sorted(self._band_keys(self._sigs[slots]), np.repeat(slots, self.bands))

    def _insert_sorted(self, band_keys: np.ndarray, slots: np.ndarray) -> None:
        band_keys = band_keys.ravel()
        order = np.argsort(band_keys, kind="stable")
        band_keys, slots = band_keys[order], slots[order]
        if self._base_keys.size == 0:
            self._base_keys, self._base_slots = band_keys, slots
            return
        at = np.searchsorted(self._base_keys, band_keys, side="right")
        self._base_keys = np.insert(self._base_keys, at, band_keys)
        self._base_slots = np.insert(self._base_slots, at, slots)

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


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
