"""Benchmark: how well story grouping separates syndicated copies from independent articles.

    python bench/stories_quality.py

Runs the labelled set (tests/fixtures/stories/labelled.json) through the pipeline's steps
in order -- comparable? -> signature -> find_all -> join the found articles' stories (merged)
or start one -> add -- for a sweep of thresholds, and prints pairwise precision and recall of "same
story" against the labels, the closest calls, and what happens to texts cut short.
Not a test.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.stories import (
    DEFAULT_THRESHOLD,
    MIN_WORDS,
    NUM_PERM,
    SHINGLE_WORDS,
    StoryIndex,
    comparable,
    shingles,
    signature,
)

LABELLED = Path(__file__).resolve().parent.parent / "tests/fixtures/stories/labelled.json"
SWEEP = [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]


def group(texts: list[str], threshold: float, gate: bool = True) -> list[int]:
    """Story number per text, assigned in order as the pipeline does."""
    index = StoryIndex(threshold=threshold)
    stories: list[int] = []
    for number, text in enumerate(texts):
        if gate and not comparable(text):
            stories.append(number)
            continue
        sig = signature(text)
        found = index.find_all(sig)
        # As the pipeline: join the best match's story and merge every other matched story
        # into it (none has alerted here), so the grouping does not depend on the order.
        into = stories[found[0]] if found else number
        merged = {stories[key] for key in found}
        stories = [into if story in merged else story for story in stories]
        stories.append(into)
        index.add(number, sig)
    return stories


def shuffled(labels: list[str], texts: list[str], runs: int = 30) -> tuple[float, float]:
    """The worst precision and recall over `runs` random orders of arrival."""
    rng = random.Random(12)
    worst = (1.0, 1.0)
    order = list(range(len(texts)))
    for _ in range(runs):
        rng.shuffle(order)
        precision, recall = pairwise([labels[i] for i in order],
                                     group([texts[i] for i in order], DEFAULT_THRESHOLD))
        worst = (min(worst[0], precision), min(worst[1], recall))
    return worst


def pairwise(labels: list[str], stories: list[int]) -> tuple[float, float]:
    agree = predicted = actual = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same, joined = labels[i] == labels[j], stories[i] == stories[j]
        agree += same and joined
        predicted += joined
        actual += same
    return (agree / predicted if predicted else 1.0), (agree / actual if actual else 1.0)


def closest_calls(rows: list[dict]) -> None:
    """The same-story pairs least alike and the different-story pairs most alike."""
    sigs = [signature(row["text"]) for row in rows]
    sets = [shingles(row["text"]) for row in rows]
    pairs = []
    for i, j in itertools.combinations(range(len(rows)), 2):
        exact = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        pairs.append((rows[i]["story"] == rows[j]["story"], sigs[i].jaccard(sigs[j]), exact, i, j))
    same = sorted(p for p in pairs if p[0])[:3]
    other = sorted((p for p in pairs if not p[0]), reverse=True)[:3]
    for title, chosen in (("same story, least alike", same), ("different stories, most alike", other)):
        print(f"  {title}:")
        for _, estimate, exact, i, j in chosen:
            print(f"    estimate {estimate:.3f} (exact {exact:.3f})  {rows[i]['id']} ~ {rows[j]['id']}")


def short_texts(rows: list[dict], labels: list[str]) -> None:
    """Every text cut to its first n words, no MIN_WORDS gate: what headline-and-lede
    items would give."""
    print(f"texts cut to n words (no gate; MIN_WORDS={MIN_WORDS} keeps shorter texts apart):")
    for n in (10, 20, 30, 40, 50, 60, 80):
        cut = [" ".join(row["text"].split()[:n]) for row in rows]
        precision, recall = pairwise(labels, group(cut, DEFAULT_THRESHOLD, gate=False))
        print(f"  n={n:3d} precision={precision:.3f} recall={recall:.3f}")


def main() -> None:
    rows = json.loads(LABELLED.read_text("utf-8"))
    labels = [row["story"] for row in rows]
    texts = [row["text"] for row in rows]
    positives = sum(a == b for a, b in itertools.combinations(labels, 2))
    total = len(rows) * (len(rows) - 1) // 2
    print(
        f"{len(rows)} articles, {len(set(labels))} stories, {len({r['event'] for r in rows})} events; "
        f"{total} pairs, {positives} of them same-story; k={SHINGLE_WORDS} words, num_perm={NUM_PERM}"
    )
    for threshold in SWEEP:
        precision, recall = pairwise(labels, group(texts, threshold))
        print(f"  threshold={threshold:.2f} precision={precision:.3f} recall={recall:.3f}")
    closest_calls(rows)
    short_texts(rows, labels)
    precision, recall = pairwise(labels, group(texts, DEFAULT_THRESHOLD))
    print(f"stories: pairs={total} precision={precision:.3f} recall={recall:.3f} "
          f"threshold={DEFAULT_THRESHOLD}")
    precision, recall = shuffled(labels, texts)
    print(f"stories in 30 random orders, worst: precision={precision:.3f} recall={recall:.3f}")


if __name__ == "__main__":
    main()
