"""Benchmark: story grouping as the pipeline will run it, then one check against 1M stored.

    python bench/dedupe.py [--articles 100000] [--stored 1000000] [--seed 11]
    python bench/dedupe.py --compare-lsh [--articles 20000]   # needs: pip install -e '.[bench]'

Part 1 generates Swedish-like articles (300-500 words, seeded RNG), a fifth of them
syndicated copies of an article published shortly before (new lede, a paragraph dropped or
added, paragraphs swapped, a local sentence, a byline), and for each one does what the app
will do: signature -> find -> story of the found article (SELECT) -> add -> INSERT, in
transactions of 500 rows into a real SQLite file. Text generation is timed apart and left
out of the rate. Part 2 rebuilds an index from the stored blobs (restart), tops it up to
1,000,000 entries with synthesised hash values and times signature(text) + find(sig) for
new articles. Part 3, alone with --compare-lsh, runs the same signed articles through
our StoryIndex and through datasketch's MinHashLSH (at our bands and at its own choice):
insert and query time, memory, candidates, and whether both group the same copies
(docs/stories.md has the figures). Not a test.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.stories import DEFAULT_THRESHOLD, NUM_PERM, SEED, Signature, StoryIndex, comparable, signature

BATCH = 500

# --- Swedish-like text ---------------------------------------------------------------------

FUNCTION_WORDS = """
och i att det som en på är av för med till den har de inte om ett han men var sig från vi
så kan man när år säger hon under också efter eller nu sin där vid mot ska skulle kommer ut
får finns vara hade alla andra mycket än här då sedan över bara in blir upp även vad två
många hur mer går detta nya procent hans utan sina något allt första fick måste mellan blev
bli dag någon några sitt stora varit dem bland tre genom del hela annat fram gör ingen enligt
redan inom kom helt samma kanske själv oss tidigare se dock denna både tid kunna fått stor
olika ser flera just fanns dessa längre vilket igen kvar samtidigt därför eftersom medan trots
""".split()

STEMS = """
regering riksdag kommun region polis domstol åklagare sjukhus skola förskola lärare elev
patient läkare sjuksköterska vård budget skatt avgift pension bostad hyra lån ränta bank
krona euro dollar inflation tillväxt export import företag fabrik jobb varsel arbetare fack
lön avtal strejk förhandling minister ministerium myndighet utredning rapport förslag beslut
lag reform val parti väljare opposition debatt protest demonstration gripande häkte fängelse
brott rån stöld skjutning explosion brand olycka bil buss tåg spår flyg flygplats hamn väg
bro tunnel trafik snö storm regn översvämning värme torka skog älv sjö kust ö fjäll gård
bonde skörd mjölk kött fisk pris butik handel kund konsument energi el elnät kraftverk
vindkraft kärnkraft solenergi batteri fordon laddning utsläpp klimat miljö forskning
forskare universitet studie resultat metod vaccin virus smitta sjukdom alliansen trupp
soldat försvar övning gräns säkerhet hot attack cyberattack hacker data system tjänst app
plattform sajt tidning redaktion journalist reporter intervju fotograf film bok författare
konstnär museum teater konsert festival match lag tränare spelare mål seger förlust final
turnering mästerskap medalj rekord publik arena säsong klubb förbund ordförande styrelse
""".split()

SUFFIXES = ["", "en", "et", "er", "erna", "ar", "arna", "s", "ens", "ens"]

NAMES = """
Tokajev Nazarbajev Masimov Pasjinian Lavrov Putin Kristersson Andersson Busch Billström
Svensson Lindqvist Berg Holm Lund Ek Sjöberg Nilsson Karlsson Johansson Eriksson Larsson
Almaty Astana Zjanaozen Moskva Jerevan Stockholm Göteborg Malmö Uppsala Umeå Luleå Kiruna
Sundsvall Östersund Skellefteå Västerås Örebro Linköping Borås Gävle Kalmar Visby Falun
CSTO Nato EU FN OSSE Kreml Riksbanken Trafikverket SMHI Försvarsmakten Säpo Northvolt
""".split()


@dataclass
class Vocabulary:
    words: np.ndarray
    cumulative: np.ndarray  # cumulative word probabilities, for drawing many words at once

    @classmethod
    def build(cls) -> Vocabulary:
        content = [stem + suffix for stem in STEMS for suffix in SUFFIXES] + NAMES
        # Zipf over the content words: a few are everywhere, most are rare, as in news text.
        content_weights = 1.0 / np.arange(1, len(content) + 1)
        content_weights *= 0.55 / content_weights.sum()
        function_weights = 1.0 / np.arange(1, len(FUNCTION_WORDS) + 1)
        function_weights *= 0.45 / function_weights.sum()
        weights = np.concatenate([function_weights, content_weights])
        return cls(np.array(FUNCTION_WORDS + content, dtype=object), np.cumsum(weights))


class ArticleWriter:
    def __init__(self, vocab: Vocabulary, rng: np.random.Generator) -> None:
        self.vocab = vocab
        self.rng = rng

    def draw(self, count: int, topic: np.ndarray) -> np.ndarray:
        rng = self.rng
        picks = self.vocab.words[np.searchsorted(self.vocab.cumulative, rng.random(count) * 0.999999)]
        # Each article returns to its own topic words, which is what makes texts differ.
        own = rng.random(count) < 0.3
        picks[own] = topic[rng.integers(0, len(topic), size=int(own.sum()))]
        return picks

    def sentences(self, topic: np.ndarray, count: int) -> list[str]:
        lengths = self.rng.integers(8, 22, size=count)
        picks = self.draw(int(lengths.sum()), topic)
        ends = np.cumsum(lengths)
        out = []
        for start, end in zip(ends - lengths, ends, strict=True):
            text = " ".join(picks[start:end])
            out.append(text[0].upper() + text[1:] + ".")
        return out

    def sentence(self, topic: np.ndarray) -> str:
        return self.sentences(topic, 1)[0]

    def paragraph(self, topic: np.ndarray) -> str:
        return " ".join(self.sentences(topic, int(self.rng.integers(2, 4))))

    def article(self) -> list[str]:
        rng = self.rng
        topic = np.concatenate([self.draw(12, self.vocab.words), rng.choice(NAMES, size=4)])
        sentences = self.sentences(topic, int(rng.integers(300, 500)) // 14 + 1)
        paragraphs = []
        while sentences:
            size = int(rng.integers(2, 4))
            paragraphs.append(" ".join(sentences[:size]))
            sentences = sentences[size:]
        return paragraphs

    def syndicated_copy(self, original: list[str]) -> list[str]:
        """An outlet's edit of a wire text: 1-3 of the usual changes."""
        rng = self.rng
        topic = np.array(" ".join(original).replace(".", "").split())
        paragraphs = list(original)
        kinds = ["lede", "drop", "add", "swap", "local"]
        edits = rng.choice(kinds, size=int(rng.integers(1, 4)), replace=False)
        for edit in edits:
            if edit == "lede":
                paragraphs[0] = self.sentence(topic) + " " + paragraphs[0].split(". ", 1)[-1]
            elif edit == "drop" and len(paragraphs) > 4:
                del paragraphs[int(rng.integers(1, len(paragraphs)))]
            elif edit == "add":
                paragraphs.insert(int(rng.integers(1, len(paragraphs) + 1)), self.paragraph(topic))
            elif edit == "swap" and len(paragraphs) > 3:
                i = int(rng.integers(1, len(paragraphs) - 1))
                paragraphs[i], paragraphs[i + 1] = paragraphs[i + 1], paragraphs[i]
            elif edit == "local":
                i = int(rng.integers(0, len(paragraphs)))
                paragraphs[i] = paragraphs[i] + " " + self.sentence(topic)
        return [*paragraphs, rng.choice(["TT", "Anna Ek/TT", "Johan Berg/TT", "(TT)"])]


@dataclass
class Generated:
    text: str
    origin: int | None  # for a copy: the number of the article it copies


class Feed:
    """Articles in publication order; copies pick an original from the last 2,000."""

    def __init__(self, writer: ArticleWriter, copy_share: float) -> None:
        self.writer = writer
        self.copy_share = copy_share
        self.recent: deque[tuple[int, list[str]]] = deque(maxlen=2000)
        self.count = 0
        self.remember = True  # off once nothing more is stored: copy only stored articles

    def next(self) -> Generated:
        rng = self.writer.rng
        number = self.count
        self.count += 1
        if self.recent and rng.random() < self.copy_share:
            origin, original = self.recent[int(rng.integers(0, len(self.recent)))]
            return Generated("\n\n".join(self.writer.syndicated_copy(original)), origin)
        paragraphs = self.writer.article()
        if self.remember:
            self.recent.append((number, paragraphs))
        return Generated("\n\n".join(paragraphs), None)


# --- Part 1: the pipeline into SQLite ------------------------------------------------------


class Costs:
    """Seconds spent per stage, summed over all articles."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"signature": 0.0, "index": 0.0, "sqlite": 0.0}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.seconds[name] += time.perf_counter() - began

    def per_article(self, count: int) -> str:
        return ", ".join(f"{name} {seconds / count * 1e6:.0f} µs" for name, seconds in self.seconds.items())


@dataclass
class InsertResult:
    seconds: float  # pipeline and commits, text generation not included
    generate_seconds: float
    costs: Costs
    copies: int
    copies_grouped: int
    originals_joined: int  # originals wrongly put into an earlier story


def create_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE articles (id INTEGER PRIMARY KEY, text_hash TEXT NOT NULL,"
        " story_id INTEGER NOT NULL, signature BLOB)"
    )


def insert_articles(db: sqlite3.Connection, feed: Feed, count: int, index: StoryIndex) -> InsertResult:
    """A batch of articles is written first, then assigned and stored in one transaction,
    as a crawl cycle hands the pipeline its new articles."""
    story_of_article: dict[int, int] = {}  # ground truth check only; the app reads SQLite
    copies = grouped = wrongly_joined = 0
    generate = work = 0.0
    costs = Costs()
    for start in range(0, count, BATCH):
        began = time.perf_counter()
        batch = [feed.next() for _ in range(min(BATCH, count - start))]
        generated = time.perf_counter()
        with db:
            stories = [assign_story(db, index, start + i, item.text, costs) for i, item in enumerate(batch)]
            with costs.stage("sqlite"):
                db.commit()
        work += time.perf_counter() - generated
        generate += generated - began
        for number, (item, story) in enumerate(zip(batch, stories, strict=True), start):
            story_of_article[number] = story
            if item.origin is None:
                wrongly_joined += story != number
            else:
                copies += 1
                grouped += story == story_of_article[item.origin]
    return InsertResult(work, generate, costs, copies, grouped, wrongly_joined)


def text_hash(text: str) -> str:
    # The app has its content hash from normalize already; this stands in for storing it.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def assign_story(db: sqlite3.Connection, index: StoryIndex, number: int, text: str, costs: Costs) -> int:
    """What the app does for one new article; returns its story id."""
    with costs.stage("signature"):
        sig = signature(text) if comparable(text) else None
    if sig is None:
        with costs.stage("sqlite"):
            db.execute("INSERT INTO articles VALUES (?, ?, ?, NULL)", (number, text_hash(text), number))
        return number
    with costs.stage("index"):
        found = index.find(sig)
        index.add(number, sig)
    story = number
    with costs.stage("sqlite"):
        if found is not None:
            (story,) = db.execute("SELECT story_id FROM articles WHERE id = ?", (found,)).fetchone()
        db.execute(
            "INSERT INTO articles VALUES (?, ?, ?, ?)", (number, text_hash(text), story, sig.to_bytes())
        )
    return story


# --- Part 2: one check against a million ---------------------------------------------------


def rebuild(db: sqlite3.Connection) -> tuple[StoryIndex, float]:
    began = time.perf_counter()
    index = StoryIndex()
    index.add_stored(db.execute("SELECT id, signature FROM articles WHERE signature IS NOT NULL"))
    return index, time.perf_counter() - began


def top_up(index: StoryIndex, total: int, seed: int) -> float:
    """Fill the index to `total` with synthesised signatures: uniform random hash values,
    i.e. articles unrelated to everything (computing 1M MinHashes from text would take
    minutes and change nothing in the lookup)."""
    count = total - len(index)
    values = np.random.default_rng(seed).integers(0, 2**32, size=(count, NUM_PERM), dtype=np.uint32)
    began = time.perf_counter()
    index.add_many(range(10_000_000, 10_000_000 + count), values)
    return time.perf_counter() - began


def time_checks(index: StoryIndex, feed: Feed, count: int) -> tuple[np.ndarray, str]:
    """Milliseconds for signature + find of new articles (a fifth of them copies of stored
    articles), and how many of each kind found a match."""
    times = []
    copies = copies_found = fresh_found = 0
    for _ in range(count):
        item = feed.next()
        began = time.perf_counter()
        hit = index.find(signature(item.text))
        times.append((time.perf_counter() - began) * 1000)
        copies += item.origin is not None
        copies_found += hit is not None and item.origin is not None
        fresh_found += hit is not None and item.origin is None
    others = count - copies
    return np.array(times), f"{copies_found}/{copies} copies and {fresh_found}/{others} others matched"


# --- Part 3 (--compare-lsh): our StoryIndex against datasketch's MinHashLSH ---------------


@dataclass
class LshRun:
    name: str
    shape: str  # bands x rows
    insert_seconds: float = 0.0
    query_seconds: float = 0.0
    candidates: int = 0
    grouped: int = 0  # copies put into their original's story
    wrongly_joined: int = 0  # originals put into an earlier story
    memory_mb: float = 0.0
    candidate_sets: list[frozenset[int]] | None = None


class DatasketchIndex:
    """datasketch's MinHashLSH for candidates, verified as StoryIndex verifies them: the
    share of equal hash values, at least the threshold, most similar first."""

    def __init__(self, params: tuple[int, int] | None) -> None:
        from datasketch import MinHashLSH  # the bench extra; the app does not need it

        self.lsh = MinHashLSH(threshold=DEFAULT_THRESHOLD, num_perm=NUM_PERM, params=params)
        self.shape = f"{self.lsh.b}x{self.lsh.r}"
        self.values: dict[int, np.ndarray] = {}

    def add(self, key: int, sig: Signature) -> None:
        self.lsh.insert(key, _lean(sig), check_duplication=False)
        self.values[key] = sig.hashvalues

    def candidates(self, sig: Signature) -> list[int]:
        return self.lsh.query(_lean(sig))

    def find(self, candidates: list[int], sig: Signature) -> int | None:
        if not candidates:
            return None
        candidates.sort()  # ties go to the earliest added, as in StoryIndex
        equal = np.count_nonzero(np.stack([self.values[k] for k in candidates]) == sig.hashvalues, axis=1)
        best = int(np.argmax(equal))
        return candidates[best] if equal[best] >= DEFAULT_THRESHOLD * NUM_PERM else None


def _lean(sig: Signature) -> object:
    from datasketch import LeanMinHash

    return LeanMinHash(seed=SEED, hashvalues=sig.hashvalues, scheme="affine32")


def signed_feed(feed: Feed, count: int) -> list[tuple[int, Signature, int | None]]:
    """(number, signature, number of the original or None) of the comparable articles."""
    signed = []
    for number in range(count):
        item = feed.next()
        if comparable(item.text):
            signed.append((number, signature(item.text), item.origin))
    return signed


def run_ours(signed: list[tuple[int, Signature, int | None]], keep_sets: bool) -> LshRun:
    index = StoryIndex()
    run = LshRun("ours (StoryIndex)", f"{index.bands}x{index.rows}", candidate_sets=[] if keep_sets else None)
    story_of: dict[int, int] = {}
    for number, sig, origin in signed:
        candidates = index._candidates(sig.hashvalues)  # untimed, for the comparison only
        run.candidates += len(candidates)
        if run.candidate_sets is not None:
            run.candidate_sets.append(frozenset(index._keys[candidates].tolist()))
        began = time.perf_counter()
        found = index.find(sig)
        queried = time.perf_counter()
        index.add(number, sig)
        run.insert_seconds += time.perf_counter() - queried
        run.query_seconds += queried - began
        _tally(run, story_of, number, found, origin)
    return run


def run_datasketch(signed: list[tuple[int, Signature, int | None]], params: tuple[int, int] | None,
                   keep_sets: bool) -> LshRun:
    index = DatasketchIndex(params)
    run = LshRun("datasketch MinHashLSH" + (" (our bands)" if params else " (its own bands)"), index.shape,
                 candidate_sets=[] if keep_sets else None)
    story_of: dict[int, int] = {}
    for number, sig, origin in signed:
        began = time.perf_counter()
        candidates = index.candidates(sig)
        found = index.find(list(candidates), sig)
        queried = time.perf_counter()
        index.add(number, sig)
        run.insert_seconds += time.perf_counter() - queried
        run.query_seconds += queried - began
        run.candidates += len(candidates)
        if run.candidate_sets is not None:
            run.candidate_sets.append(frozenset(candidates))
        _tally(run, story_of, number, found, origin)
    return run


def _tally(run: LshRun, story_of: dict[int, int], number: int, found: int | None, origin: int | None) -> None:
    story_of[number] = number if found is None else story_of[found]
    if origin is None:
        run.wrongly_joined += found is not None
    else:
        run.grouped += story_of.get(origin) == story_of[number]


def index_memory_mb(signed: list[tuple[int, Signature, int | None]], build: object) -> float:
    """Bytes allocated by building the index and kept after it (tracemalloc sees numpy's
    buffers as well as Python objects), in a pass of its own: tracing slows allocation."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = build()
    for number, sig, _ in signed:
        index.add(number, sig)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    return (after - before) / 2**20


def compare_lsh(articles: int, seed: int) -> None:
    writer = ArticleWriter(Vocabulary.build(), np.random.default_rng(seed))
    signed = signed_feed(Feed(writer, copy_share=0.2), articles)
    copies = sum(origin is not None for _, _, origin in signed)
    print(f"compare-lsh: {len(signed)} signed articles ({copies} copies), each: find, then add")
    probe = StoryIndex()
    ours_bands = (probe.bands, probe.rows)
    ours = run_ours(signed, keep_sets=True)
    theirs_same = run_datasketch(signed, ours_bands, keep_sets=True)
    theirs_own = run_datasketch(signed, None, keep_sets=False)
    ours.memory_mb = index_memory_mb(signed, StoryIndex)
    theirs_same.memory_mb = index_memory_mb(signed, lambda: DatasketchIndex(ours_bands))
    theirs_own.memory_mb = index_memory_mb(signed, lambda: DatasketchIndex(None))
    count = len(signed)
    print(f"{'index':<36} {'bands':>6} {'insert µs':>10} {'query µs':>9} {'cand/q':>7} "
          f"{'copies grouped':>15} {'wrong joins':>11} {'MB':>6} {'B/entry':>8}")
    for run in (ours, theirs_same, theirs_own):
        print(f"{run.name:<36} {run.shape:>6} {run.insert_seconds / count * 1e6:>10.1f} "
              f"{run.query_seconds / count * 1e6:>9.1f} {run.candidates / count:>7.2f} "
              f"{run.grouped:>7}/{copies:<7} {run.wrongly_joined:>11} {run.memory_mb:>6.1f} "
              f"{run.memory_mb * 2**20 / count:>8.0f}")
    pairs = zip(ours.candidate_sets or [], theirs_same.candidate_sets or [], strict=True)
    same = sum(a == b for a, b in pairs)
    print(f"candidate sets equal to datasketch's at the same bands: {same}/{count}")
    for run in (theirs_same, theirs_own):
        print(f"ratio {run.name} / ours: insert {run.insert_seconds / ours.insert_seconds:.1f}x, "
              f"query {run.query_seconds / ours.query_seconds:.1f}x, "
              f"memory {run.memory_mb / ours.memory_mb:.1f}x")
    print(f"lsh: articles={count} ours_insert_us={ours.insert_seconds / count * 1e6:.1f} "
          f"ours_query_us={ours.query_seconds / count * 1e6:.1f} ours_mb={ours.memory_mb:.1f} "
          f"ds_insert_x={theirs_same.insert_seconds / ours.insert_seconds:.1f} "
          f"ds_query_x={theirs_same.query_seconds / ours.query_seconds:.1f} "
          f"ds_mb_x={theirs_same.memory_mb / ours.memory_mb:.1f} candidates_equal={same}/{count}")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--compare-lsh", action="store_true",
                        help="only part 3: StoryIndex against datasketch's MinHashLSH on --articles "
                             "articles (needs the bench extra: pip install -e '.[bench]')")
    args = parser.parse_args()
    if args.compare_lsh:
        compare_lsh(args.articles, args.seed)
        return

    writer = ArticleWriter(Vocabulary.build(), np.random.default_rng(args.seed))
    feed = Feed(writer, copy_share=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "dedupe.db")
        create_table(db)
        index = StoryIndex()
        print(f"index: threshold={index.threshold} num_perm={index.num_perm} "
              f"bands={index.bands}x{index.rows} rows")
        result = insert_articles(db, feed, args.articles, index)
        rate = args.articles / result.seconds
        peak = peak_mb()
        size_mb = (Path(tmp) / "dedupe.db").stat().st_size / 2**20
        print(
            f"insert: {args.articles} articles in {result.seconds:.1f} s = {rate:.0f} art/s "
            f"(text generation, {result.generate_seconds:.1f} s, not counted); peak RSS {peak:.0f} MB; "
            f"index {index.nbytes / 2**20:.0f} MB; db {size_mb:.0f} MB"
        )
        print(f"cost per article: {result.costs.per_article(args.articles)}")
        print(
            f"grouping: {result.copies_grouped}/{result.copies} copies joined their original's story, "
            f"{result.originals_joined} originals wrongly joined an earlier story"
        )
        index = None  # the restart: only SQLite survives
        index, seconds = rebuild(db)
        print(f"rebuild: {len(index)} signatures from SQLite in {seconds:.2f} s")
        db.close()

    seconds = top_up(index, args.stored, args.seed)
    print(
        f"{len(index):,} index: {len(index) - args.articles} synthesised signatures (random hash values, "
        f"not computed from text) added in {seconds:.1f} s; index {index.nbytes / 2**20:.0f} MB "
        f"= {index.nbytes / len(index):.0f} B/entry"
    )
    feed.remember = False
    times, found = time_checks(index, feed, args.checks)
    p50, p99 = np.percentile(times, [50, 99])
    print(f"check: signature+find for {args.checks} new articles, {found}; "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"dedupe: articles={args.articles} rate={rate:.0f} art/s peak={peak:.0f} MB "
        f"check_1m_p50={p50:.2f} ms p99={p99:.2f} ms"
    )


if __name__ == "__main__":
    main()
