"""Benchmark: hostile watchlists, seconds per article. Not a test.

    python bench/hostile_match.py [--groups 950] [--words 10000]

An OR of `--groups` `(a OR b) NEAR/n (c OR d)` groups, true all over an article of `--words`
words (deciding, then the hit's words and snippet), and backtracking globs (`*a*a*c*`)
against long words. Before issue 11 (effb4f1) the hit's words took 6.6 / 18.1 / 61.5 s at
475 / 950 / 1,900 groups and 10,000 words (quadratic; now 0.8 / 1.2 / 2.5 s), and the globs
took over 40 s on a 1,000-letter word (now under a millisecond).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.rules import Document, Matcher

WORDS = """kazakstan almaty csto ryssland trupper protester regeringen presidenten gas priset
demonstranter polisen gripna undantagstillstånd tokajev nazarbajev moskva alliansen soldater
flygplatsen""".split()


def near_groups(groups: int, words: int) -> tuple[float, float]:
    count = len(WORDS)
    query = " OR ".join(
        f"({WORDS[i % count]} OR {WORDS[(i + 1) % count]}) NEAR/{i % 7 + 1} "
        f"({WORDS[(i * 7 + 3) % count]} OR {WORDS[(i * 11 + 5) % count]})"
        for i in range(groups)
    )
    matcher = Matcher({"many": query})
    doc = Document(title="Läget", text=" ".join(WORDS[(i * 3) % count] for i in range(words)))
    started = time.perf_counter()
    hit = matcher.match(doc)["many"]
    decided = time.perf_counter()
    assert hit.words and hit.snippet
    return decided - started, time.perf_counter() - decided


def globs(length: int) -> float:
    matcher = Matcher({"aac": "*a*a*c*", "five": "a*a*a*a*a*b", "url": "url:*a*a*a*a*b*"})
    started = time.perf_counter()
    matcher.match(Document(text="a" * length, url="https://example.se/" + "a" * length))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=950)
    parser.add_argument("--words", type=int, default=10_000)
    args = parser.parse_args()
    for groups in (args.groups // 2, args.groups, args.groups * 2):
        decide, words = near_groups(groups, args.words)
        print(f"OR of {groups:>5} NEAR groups, {args.words} words: decide {decide:.3f} s, "
              f"hit words and snippet {words:.3f} s", flush=True)
    for length in (200, 1000, 100_000):
        print(f"backtracking globs, a {length}-letter word and URL: {globs(length):.4f} s", flush=True)


if __name__ == "__main__":
    main()
