"""Section front pages: the article links on a listing page, found with Scrapy's LinkExtractor.
Each link is reported on every poll; the store makes sure it is fetched only once."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from scrapy.http import Response, TextResponse
from scrapy.linkextractors import LinkExtractor

from monitor.errors import FetchError
from monitor.models import Entry
from monitor.normalize import clean_string, clean_text
from spiders.base import SourceSpider, SourceTarget

# Without a `follow:` selector, a same-site link looks like an article when its last path
# segment is a slug with several words or an id, or a page (.html) — not a section or tag page.
ARTICLE_PATH = r"/[^/?#]*(?:[a-z0-9åäö]+-){2,}[^/?#]*(?:\.html?)?$|/[^/?#]*\d{4,}[^/?#]*$|\.html?$"
NOT_ARTICLES = (r"/(?:tagg?|taggar|tag|amne|ämne|kategori|category|om|konto|login|logga-in|"
                r"kontakt|prenumeration|sok|search)/", r"/index\.html?$")


# A link's text is a teaser headline at most; longer ones are whole teaser boxes.
LINK_TITLE_MAX = 300


class ListingSpider(SourceSpider):
    name = "listing"
    accept = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

    def entries(self, response: Response, target: SourceTarget) -> Iterator[Entry]:
        if not isinstance(response, TextResponse):
            raise FetchError("not an HTML page")
        host = urlsplit(response.url).netloc  # LinkExtractor compares host and port together
        if target.follow:
            extractor = LinkExtractor(restrict_css=target.follow, allow_domains=[host])
        else:
            extractor = LinkExtractor(allow=ARTICLE_PATH, deny=NOT_ARTICLES, allow_domains=[host],
                                      unique=True)
        page = response.url.split("#")[0]
        for link in extractor.extract_links(response):
            if link.url.split("#")[0] != page:
                yield Entry(url=clean_string(link.url), guid=None,
                            title=clean_string(clean_text(link.text), LINK_TITLE_MAX),
                            summary="", published=None)

