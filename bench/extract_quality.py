"""Word-level precision and recall of monitor.extract against hand-written gold texts.

Bag of words: lowercased word tokens, multiset intersection. Micro-averaged
over all pages, so long articles weigh more than short ones. Prints one line
per page, then the same score for plain trafilatura (no Swedish box pruning) as
a baseline, and ends with ``extract: pages=N precision=P recall=R``.

The gold texts and the fixture pages were written by the same team that tuned
the extractor, so this measures fit to these layouts, not real-world quality.

    python bench/extract_quality.py
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402
from scrapy.http import HtmlResponse  # noqa: E402

from monitor.extract import extract_article  # noqa: E402

SITE = REPO / "tests" / "fixtures" / "site"
GOLD = REPO / "tests" / "fixtures" / "gold"
BASE_URL = "http://127.0.0.1:8000"
WORD = re.compile(r"\w+")


def words(text: str) -> Counter[str]:
    return Counter(WORD.findall(text.lower()))


def page_for(stem: str) -> Path:
    matches = list(SITE.rglob(f"{stem}.html"))
    if len(matches) != 1:
        raise SystemExit(f"expected one page named {stem}.html under {SITE}, found {matches}")
    return matches[0]


def read_page(path: Path, url: str) -> str:
    """Decode as the crawler will: Scrapy's response.text, with the header the
    fixture server sends (see tests/fixtures/site/README.md)."""
    content_type = (
        "text/html; charset=iso-8859-1" if path.name.endswith(".latin1.html") else "text/html"
    )
    response = HtmlResponse(url, body=path.read_bytes(), headers={"Content-Type": content_type})
    return response.text


def ours(html: str, url: str) -> str:
    article = extract_article(html, url)
    return article.text if article else ""


def plain_trafilatura(html: str, url: str) -> str:
    return trafilatura.extract(html, url=url, favor_precision=True, include_comments=False) or ""


def main() -> None:
    score(plain_trafilatura, "baseline (plain trafilatura)", per_page=False)
    score(ours, "extract", per_page=True)


def score(extractor: Callable[[str, str], str], label: str, per_page: bool) -> None:
    total_hit = total_extracted = total_gold = 0
    golds = sorted(GOLD.glob("*.txt"))
    for gold_path in golds:
        page = page_for(gold_path.stem)
        url = f"{BASE_URL}/{page.relative_to(SITE).as_posix()}"
        extracted = words(extractor(read_page(page, url), url))
        gold = words(gold_path.read_text(encoding="utf-8"))
        hit = sum((extracted & gold).values())
        n_extracted, n_gold = sum(extracted.values()), sum(gold.values())
        total_hit += hit
        total_extracted += n_extracted
        total_gold += n_gold
        precision = hit / n_extracted if n_extracted else 0.0
        recall = hit / n_gold if n_gold else 0.0
        if per_page:
            print(
                f"{gold_path.stem:28} precision={precision:.3f} recall={recall:.3f} "
                f"words={n_extracted}/{n_gold}"
            )
    precision = total_hit / total_extracted if total_extracted else 0.0
    recall = total_hit / total_gold if total_gold else 0.0
    print(f"{label}: pages={len(golds)} precision={precision:.3f} recall={recall:.3f}")


if __name__ == "__main__":
    main()
