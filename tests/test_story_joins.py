"""Stories that must join whatever the order: short exact copies under different headlines,
and edited wire copies that are not all close to each other."""

from __future__ import annotations

import html
import itertools
import json
import sqlite3
from pathlib import Path

from conftest import monitor_config, run_monitor, write_config
from servers import Receiver, Site

from monitor.stories import DEFAULT_THRESHOLD, StoryIndex, body_hash, comparable, signature

# One TT text about the Kazakh government's resignation as three outlets edited it: each its own
# lede, a sentence more or less. B and C, and A and C, share most sentences; A and B share fewer
# (estimated Jaccard 0.38, below the threshold), so a story holding only A does not take B.
_S = [
    "Kazakstans regering har avgått efter flera dagars våldsamma protester mot höjda gaspriser.",
    "President Kassym-Zjomart Tokajev godtog avgången under onsdagen och utsåg en tillförordnad"
    " premiärminister.",
    "Protesterna började i oljestaden Zjanaozen i västra Kazakstan och spred sig snabbt till Almaty.",
    "I Almaty stormade demonstranter borgmästarens kontor och satte eld på flera polisbilar under natten.",
    "Regeringen har utlyst undantagstillstånd i Almaty och i provinsen Mangistau fram till den 19 januari.",
    "Internet har stängts ned i stora delar av landet enligt organisationen Netblocks.",
    "Priset på flytande gas fördubblades vid årsskiftet när statliga pristak togs bort.",
    "Tokajev lovade att sänka priset igen men demonstranterna krävde mer än så.",
]
WIRE = {
    "A": ["Hela regeringen i Kazakstan lämnar sin post efter protester som skakat landet.", _S[1], _S[2],
          _S[3], _S[4], "Uppgifter om döda har inte bekräftats av oberoende källor.", _S[6],
          "Presidenten har lovat sänkta priser."],
    "B": [_S[0], _S[1], _S[2], _S[3], "Undantagstillstånd gäller nu i Almaty och Mangistau.", _S[5], _S[6],
          _S[7]],
    "C": ["Efter dagar av oroligheter har Kazakstans regering avgått.", _S[1], _S[2], _S[3], _S[4], _S[5],
          _S[6], _S[7]],
}
TITLES = {
    "A": "Kazakstans regering lämnar efter protesterna",
    "B": "Regeringen i Kazakstan avgår",
    "C": "Oroligheterna fäller Kazakstans regering",
}


def body(copy: str) -> str:
    return " ".join(WIRE[copy])


def test_the_wire_copies_are_edited_copies_not_all_close_to_each_other() -> None:
    """The fixture's shape: bodies of 80-100 words, two pairs above the threshold, one below."""
    assert all(80 <= len(body(c).split()) <= 100 and comparable(body(c)) for c in WIRE)
    sigs = {c: signature(body(c)) for c in WIRE}
    assert sigs["A"].jaccard(sigs["B"]) < DEFAULT_THRESHOLD
    assert sigs["A"].jaccard(sigs["C"]) >= DEFAULT_THRESHOLD + 0.1
    assert sigs["B"].jaccard(sigs["C"]) >= DEFAULT_THRESHOLD + 0.1


def test_an_article_close_to_two_earlier_copies_finds_both() -> None:
    """find_all gives every stored article above the threshold, most similar first; find the best."""
    index = StoryIndex()
    index.add(1, signature(body("A")))
    index.add(2, signature(body("B")))
    sig = signature(body("C"))

    assert index.find_all(sig) == [2, 1]  # C ~ B 0.55, C ~ A 0.54
    assert index.find(sig) == 2
    assert index.find_all(signature(body("A"))) == [1]


def group(order: str) -> dict[str, int]:
    """Story per copy as the pipeline assigns them: join every found article's story, merged."""
    index = StoryIndex()
    stories: dict[str, int] = {}
    for number, copy in enumerate(order):
        sig = signature(body(copy))
        found = [order[key] for key in index.find_all(sig)]
        into = stories[found[0]] if found else number
        merged = {stories[c] for c in found}
        stories = {c: into if story in merged else story for c, story in stories.items()}
        stories[copy] = into
        index.add(number, sig)
    return stories


def test_three_edited_copies_are_one_story_in_every_order_of_arrival() -> None:
    for order in map("".join, itertools.permutations("ABC")):
        assert len(set(group(order).values())) == 1, order


def test_short_identical_bodies_share_a_hash_whatever_the_case_spacing_and_punctuation() -> None:
    notice = "TT: Två personer har omkommit i en trafikolycka på E4 norr om Gävle, uppger polisen."
    assert not comparable(notice)
    spaced = "  tt  två personer har omkommit i en trafikolycka på E4 norr om gävle – uppger polisen "
    assert body_hash(notice) == body_hash(spaced)
    assert body_hash(notice) != body_hash(notice.replace("Gävle", "Sundsvall"))
    assert body_hash("Artikeln uppdateras.") is None, "a boilerplate line joins nothing"


# --- end to end: the real CLI, a local site, the webhook receiver --------------------------------

PAGE = """<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8"><title>{title}</title></head>
<body><nav><a href="/">Start</a></nav><article><h1>{title}</h1>{paragraphs}</article>
<footer>Tidningen AB</footer></body></html>"""

FEED = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>
<link>{{base}}/</link>{items}</channel></rss>"""

ITEM = """<item><title>{title}</title><link>{{base}}{path}</link><guid>{guid}</guid>
<description>{summary}</description><pubDate>Wed, 25 Nov 2026 08:00:00 +0100</pubDate></item>"""


def feed(site: Site, name: str, items: list[tuple[str, str, str, str]]) -> None:
    entries = "".join(ITEM.format(title=html.escape(t), path=p, guid=g, summary=html.escape(s))
                      for t, p, g, s in items)
    site.write(f"feeds/{name}.xml", FEED.format(name=name, items=entries))


def wire_page(site: Site, copy: str) -> str:
    path = f"/{copy.lower()}/kazakstan-regeringen.html"
    # Two sentences a paragraph, as outlets print them.
    paragraphs = "".join(f"<p>{html.escape(' '.join(WIRE[copy][i:i + 2]))}</p>" for i in range(0, 8, 2))
    site.write(path, PAGE.format(title=html.escape(TITLES[copy]), paragraphs=paragraphs))
    return path


def stories_of(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT url, story_id FROM articles"))


def test_edited_wire_copies_across_two_cycles_give_one_alert(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """Cycle 1 brings copy A and alerts. Cycle 2 brings B (not close to A) and then C (close to
    both): B and C join A's story, no second alert."""
    paths = {copy: wire_page(site, copy) for copy in WIRE}
    feed(site, "svd", [(TITLES["A"], paths["A"], "svd-1", "")])
    feed(site, "nyhetsflode", [])
    config = write_config(tmp_path, monitor_config(
        site, receiver, feeds=("feeds/svd.xml", "feeds/nyhetsflode.xml"), query="kazak*"))

    first = run_monitor(config, "once")
    assert first.returncode == 0, first.stderr
    assert len(receiver.received) == 1

    feed(site, "nyhetsflode", [(TITLES["B"], paths["B"], "nf-1", ""), (TITLES["C"], paths["C"], "nf-2", "")])
    second = run_monitor(config, "once")

    assert second.returncode == 0, second.stderr
    stories = stories_of(tmp_path / "monitor.db")
    assert len(stories) == 3 and len(set(stories.values())) == 1, stories
    assert len(receiver.received) == 1, [json.loads(b)["article"]["url"] for b in receiver.bodies()]


def test_edited_wire_copies_in_one_cycle_give_one_alert_naming_the_others(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    paths = {copy: wire_page(site, copy) for copy in WIRE}
    # A before B before C: the two copies least alike arrive first.
    feed(site, "nyhetsflode", [(TITLES[c], paths[c], f"nf-{c}", "") for c in "ABC"])
    config = write_config(tmp_path, monitor_config(
        site, receiver, feeds=("feeds/nyhetsflode.xml",), query="kazak*"))

    result = run_monitor(config, "once")

    assert result.returncode == 0, result.stderr
    (alert,) = [json.loads(b) for b in receiver.bodies()]
    named = {alert["article"]["url"], *alert["also_seen_at"]}
    assert {url.split("/", 3)[3] for url in named} == {p.lstrip("/") for p in paths.values()}


def test_short_syndicated_items_with_identical_text_give_one_alert(
    tmp_path: Path, site: Site, receiver: Receiver
) -> None:
    """A TT notice too short to compare, under each outlet's own headline, in two cycles."""
    notice = ("Kazakstans president Tokajev har utsett en ny premiärminister efter regeringens avgång, "
              "meddelar presidentens kansli enligt TT.")
    other = ("Kazakstans utrikesminister besöker Moskva nästa vecka för samtal om gaspriserna, "
             "meddelar ministeriet enligt TT.")
    assert not comparable(notice)
    feed(site, "svd", [("Ny premiärminister i Kazakstan", "/svd/1.html", "svd-1", notice)])
    feed(site, "gp", [("Tokajev utser ny premiärminister", "/gp/1.html", "gp-1", notice),
                      ("Kazakstan till Moskva", "/gp/2.html", "gp-2", other)])
    config = write_config(tmp_path, monitor_config(
        site, receiver, feeds=("feeds/svd.xml", "feeds/gp.xml"), query="kazak*", full_text=False))

    first = run_monitor(config, "once")

    assert first.returncode == 0, first.stderr
    bodies = [json.loads(b) for b in receiver.bodies()]
    assert len(bodies) == 2, [b["article"]["url"] for b in bodies]
    (copied,) = [b for b in bodies if b["also_seen_at"]]
    named = {copied["article"]["url"], *copied["also_seen_at"]}
    assert {url.split("/", 3)[3] for url in named} == {"svd/1.html", "gp/1.html"}

    feed(site, "sydsvenskan", [("Premiärminister utsedd", "/sds/1.html", "sds-1", notice.upper())])
    config = write_config(tmp_path, monitor_config(
        site, receiver, feeds=("feeds/svd.xml", "feeds/gp.xml", "feeds/sydsvenskan.xml"), query="kazak*",
        full_text=False))
    second = run_monitor(config, "once")

    assert second.returncode == 0, second.stderr
    assert len(receiver.received) == 2, "the copy in the next cycle joined the stored story"
