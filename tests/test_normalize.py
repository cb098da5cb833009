from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.normalize import canonical_url, clean_text, content_hash


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://www.svt.se/nyheter/a?utm_source=rss&utm_medium=feed", "https://www.svt.se/nyheter/a"),
        ("HTTPS://WWW.SVT.SE:443/nyheter/A#top", "https://www.svt.se/nyheter/A"),
        ("http://dn.se:80/x?b=2&a=1&fbclid=z&gclid=y", "http://dn.se/x?a=1&b=2"),
        ("http://127.0.0.1:8080/a?id=7", "http://127.0.0.1:8080/a?id=7"),
        ("https://gp.se", "https://gp.se/"),
        ("https://www.gp.se/a;jsessionid=ABC123?PHPSESSID=x&id=4", "https://www.gp.se/a?id=4"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


paths = st.lists(st.text("abcåäö-_.0123456789", min_size=1, max_size=8), min_size=1, max_size=4)


@given(
    paths, st.dictionaries(st.sampled_from(["id", "p", "utm_source", "sida"]), st.text("ab12", max_size=3))
)
def test_canonical_url_is_idempotent_and_keeps_paths_apart(path: list[str], query: dict[str, str]) -> None:
    from urllib.parse import quote, urlencode

    url = "https://www.svt.se/" + "/".join(quote(p) for p in path) + "?" + urlencode(query)
    once = canonical_url(url)
    assert canonical_url(once) == once
    other = canonical_url("https://www.svt.se/" + "/".join(quote(p) for p in path) + "/x")
    assert other != once


def test_clean_text() -> None:
    assert clean_text("<p>Tokajev &amp; CSTO</p><p>Almaty</p>") == "Tokajev & CSTO Almaty"
    assert clean_text(None) == ""


def test_content_hash_ignores_case_and_spacing() -> None:
    assert content_hash("Rubrik", "Text  här") == content_hash("rubrik", "text här")
    assert content_hash("Rubrik", "a") != content_hash("Rubrik", "b")
