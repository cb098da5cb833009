"""The watchlist query language: parse queries, match articles against many at once.

    from monitor.rules import Matcher, Document
    matcher = Matcher({"kazakstan": "Kazakstan AND (CSTO OR ОДКБ)"})
    matcher.match(Document(title="CSTO-styrkorna lämnar Kazakstan"))  # {"kazakstan": Hit(...)}

The language is documented for users in docs/query-language.md.
"""

from monitor.errors import QueryError
from monitor.rules.matcher import MATCH_BUDGET, Cut, Document, Hit, Matched, Matcher
from monitor.rules.parser import parse_query
from monitor.rules.snippet import highlight

__all__ = [
    "MATCH_BUDGET", "Cut", "Document", "Hit", "Matched", "Matcher", "QueryError", "highlight", "parse_query",
]
