"""The language of an article: judged once, on the opening of its text.

py3langid (and its model) loads on the first text long enough to judge, so commands that
never judge a language do not pay for it."""

from __future__ import annotations

# Below this many characters of text a statistical language guess is unreliable (a paywalled
# lede, a short notice, a headline alone), so the page's own <html lang> is trusted instead.
MIN_CHARS_FOR_DETECTION = 200
# The opening of an article tells its language as well as the whole does, and py3langid's
# time grows with the text: long texts are judged on this much.
LANGUAGE_SAMPLE_CHARS = 3000


def detect_language(text: str, declared: str | None = None) -> str | None:
    """The language of a text, judged on its opening; for a short text the declared one, or
    None when there is none (a headline alone is too short to tell Swedish from Norwegian
    reliably)."""
    if len(text) < MIN_CHARS_FOR_DETECTION:
        return declared
    import py3langid

    detected, _score = py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])
    return detected
