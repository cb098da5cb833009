"""Benchmark: the Matcher of another git revision against this one, paired in one process.

    python bench/compare.py REV [--articles 400] [--watchlists 10000] [--snippets]

This machine's speed drifts by up to a third within minutes, so rates from two runs of
bench/match.py cannot tell a 5% change. Here both matchers run in turns on the same slices
of the same articles (as in bench/match.py), so a slow spell falls on both; the figure to
read is the ratio. `--snippets` also works out every hit's words and snippet. Not a test.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import match as bench  # noqa: E402  (bench/match.py: the articles and watchlists)

from monitor.rules import Matcher  # noqa: E402

OLD_PACKAGE = "monitor_compared"
SLICE = 40  # articles per turn


def import_revision(revision: str, into: Path) -> type:
    """The Matcher class of `monitor` as it was at `revision`, imported under another name."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "monitor"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "monitor"
    for source in package.rglob("*.py"):
        text = re.sub(r"\b(from|import) monitor\b", rf"\1 {OLD_PACKAGE}", source.read_text())
        source.write_text(text)
    package.rename(into / OLD_PACKAGE)
    sys.path.insert(0, str(into))
    module = __import__(f"{OLD_PACKAGE}.rules", fromlist=["Matcher"])
    return module.Matcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--watchlists", type=int, default=10_000)
    parser.add_argument("--snippets", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    vocab = bench.Vocabulary.build(random.Random(args.seed))
    writer = bench.ArticleWriter(vocab, random.Random(args.seed + 1))
    docs = [writer.article(n) for n in range(args.articles)]
    queries = bench.watchlists(args.watchlists, vocab, args.seed + args.watchlists)
    with tempfile.TemporaryDirectory() as scratch:
        old_matcher = import_revision(args.revision, Path(scratch))(queries)
        new_matcher = Matcher(queries)
        runs = {args.revision: old_matcher.match, "this tree": new_matcher.match}
        if args.snippets:
            # As bench/match.py's "+ snippets": every hit's words and snippet too.
            runs = {name: lambda doc, run=run: bench.shown(run(doc)) for name, run in runs.items()}
        # The old revision has its own Document class; its fields are the same.
        old_docs = [old_matcher.match.__globals__["Document"](**vars(doc)) for doc in docs]
        inputs = {args.revision: old_docs, "this tree": docs}
        same = all(
            sorted(runs[args.revision](old)) == sorted(runs["this tree"](new))
            for old, new in zip(old_docs, docs, strict=True)
        )
        seconds = dict.fromkeys(runs, 0.0)
        for _ in range(3):
            for start in range(0, len(docs), SLICE):
                for name, run in runs.items():
                    began = time.perf_counter()
                    for doc in inputs[name][start : start + SLICE]:
                        run(doc)
                    seconds[name] += time.perf_counter() - began
    for name, spent in seconds.items():
        print(f"{name:>12}: {3 * len(docs) / spent:8,.0f} art/s")
    print(f"same matches: {'yes' if same else 'NO'}")
    print(
        f"compare: watchlists={args.watchlists} snippets={'yes' if args.snippets else 'no'} "
        f"this tree / {args.revision} = {seconds[args.revision] / seconds['this tree']:.3f}"
    )


if __name__ == "__main__":
    main()
