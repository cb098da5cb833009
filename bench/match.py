"""Benchmark: the Matcher against a naive loop, at 10, 1,000 and 10,000 watchlists (or --watchlists).

    python bench/match.py [--articles 2000] [--seed 7] [--watchlists 1000 10000 100000]

Generates Swedish-like articles (~500 words) and watchlists of realistic shape (5-30 terms,
wildcards, phrases, NEAR, NOT, scopes) from a seeded RNG, runs both matchers in this process,
prints articles per second and checks that both found the same watchlists. Not a test.

"engine" decides which watchlists match, as the naive loop does; "+ snippets" also works out
each hit's words and snippet (what the daemon stores and alerts with), which the Matcher
does only when asked. The engine's figures are the median of three passes over all the
articles (the first pass starts with an empty word cache; each pass is printed); the naive
loop runs once, on a sample of the articles that shrinks as the watchlists grow (at 100,000
a few articles only: it takes seconds per article).

Two mixes of watchlists. "natural": every watchlist drawn alike, so the hits per article grow
in step with the number of watchlists (about 2.5 per 1,000), which is unrealistic past
10,000: a hundred thousand watchlists are mostly a long tail of subjects of their own.
"fixed": the first 10,000 as in the natural mix, the rest each following a person of its own
whom the articles never name, so the hits per article stay those of 10,000. Both are
reported past 10,000 watchlists. "matcher memory" is the growth of the process's resident
memory while the Matcher is built, and after all the passes (its cache of compiled forms).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.rules import Document, Hit, Matcher, parse_query
from monitor.rules.nodes import And, Meta, Mode, Near, Node, Not, Phrase, Scope, Term
from monitor.rules.text import WORD_RE, fold, nfc, stem

# --- Vocabulary: real Swedish words, names and places, with inflections -------------------

GENERAL = """
och i att det som en på är av för med till den har de inte om ett han men var jag sig från
vi så kan man när år säger hon under också efter eller nu sin där vid mot ska skulle kommer
ut får finns vara hade alla andra mycket än här då sedan över bara in blir upp även vad få
två vill ha många hur mer går detta nya procent hans utan sina något svenska allt första
fick måste mellan blev bli dag någon några sitt stora varit dem bland bra tre ta genom del
hela annat fram gör ingen göra enligt mig redan inom kom du helt ju samma kanske själv oss
tidigare se miljoner dock denna både tid kunna fått stor olika ser flera plats just fanns
dessa längre vilket igen kvar hålla dagens regeringen landet landets veckan fortfarande
uppger berättar menar anser tror visar pekar pågår ökar minskar väntas kräver vägrar
bekräftar förnekar rapporterar uppgifter källor enligt uppgift bland annat samtidigt
däremot dessutom därför eftersom medan trots särskilt nyligen senast snart länge tidigt
sent landet människor invånare myndigheter befolkningen situationen frågan läget beslutet
""".split()

TOPICS = {
    "protester": "protest protesten protester protesterna demonstration demonstrationen "
    "demonstrationer demonstranter demonstranterna upplopp upploppen kravaller polisen "
    "gripna gripits dödade skadade tårgas undantagstillstånd undantagstillståndet "
    "utegångsförbud bränslepriset bränslepriserna gaspriset missnöje oroligheterna",
    "militär": "trupp trupper trupperna soldat soldater soldaterna styrka styrkor styrkorna "
    "fredsbevarande militär militära militären övning övningen övningar allians alliansen "
    "försvarsalliansen militäralliansen säkerhet säkerheten kollektiv försvarsminister "
    "försvarsministern stridsvagnar flygbas flygbasen ryskledda",
    "politik": "president presidenten presidentens regering regeringens premiärminister "
    "premiärministern parlament parlamentet val valet valen oppositionen partiet "
    "reformer reformen konstitution konstitutionen folkomröstning makten maktskifte "
    "avgick avgång utnämnde",
    "diplomati": "utrikesminister utrikesministern toppmöte toppmötet samtal samtalen avtal "
    "avtalet avtalen samarbete samarbetet sanktioner sanktionerna ambassad ambassaden "
    "ambassadör delegation fördömer fördömde uppmanar förhandlingar förhandlingarna",
    "energi": "olja oljan oljeexport gas naturgas uran uranet kärnkraft kärnkraftverk "
    "pipeline rörledningen export exporten energi energipriser elpriset gruva gruvan "
    "gruvor koppar vete spannmål råvaror",
    "ekonomi": "ekonomi ekonomin inflation inflationen räntan kronor dollar tenge rubel "
    "investeringar investerare handel handeln tillväxt tillväxten företag företagen "
    "börsen aktier banken centralbanken budget budgeten",
    "medier": "journalist journalisten journalister medier medierna censur internet "
    "internetavstängning avstängningen pressfrihet yttrandefrihet rapportering "
    "reportrar nyhetsbyrån tv-kanalen redaktionen",
    "rätt": "domstol domstolen rättegång rättegången dom domen fängelse fängelset "
    "åklagare åklagaren åtal åtalet anklagad anklagade korruption korruptionen "
    "förräderi terrorism gripandet häktad",
    "migration": "flyktingar flyktingarna asyl asylsökande gränsen gränser "
    "gränskontroll gränsövergången migranter arbetskraft utvisning",
    "klimat": "klimat klimatet utsläpp utsläppen torka översvämningar aralsjön vatten "
    "vattnet stäpp stäppen miljö miljön temperaturen",
    "rymd": "rymd rymden raket raketen uppskjutning uppskjutningen kosmodrom "
    "astronaut astronauter satellit satelliten rymdstation",
    "idrott": "landslaget matchen mål vm em guld silver brons cyklist laget tränaren "
    "säsongen finalen semifinalen",
}

PLACES = """
Kazakstan Ryssland Kina Kirgizistan Tadzjikistan Uzbekistan Turkmenistan Armenien
Azerbajdzjan Belarus Ukraina Georgien Moldavien Afghanistan Iran Turkiet Mongoliet Indien
Pakistan Japan Tyskland Frankrike Polen Finland Norge Danmark Estland Lettland Litauen
Ungern Italien Spanien Storbritannien USA Kanada Syrien Irak Israel Egypten Libanon Jemen
Almaty Astana Bisjkek Tasjkent Dusjanbe Asjchabad Jerevan Baku Minsk Moskva Peking Kiev
Tbilisi Kabul Teheran Ankara Warszawa Berlin Paris London Washington Bryssel Genève Wien
Helsingfors Oslo Köpenhamn Tallinn Riga Vilnius Stockholm Göteborg Malmö Uppsala Umeå
Luleå Kiruna Visby Västerås Örebro Linköping Norrköping Jönköping Växjö Karlstad Gävle
Sundsvall Östersund Falun Borås Halmstad Kalmar Karlskrona Kristianstad Lund Helsingborg
Sverige Shymkent Aqtau Aktobe Karaganda Pavlodar Semej Taraz Atyrau Zjanaozen Bajkonur
Osj Samarkand Buchara Chudzjand Sibirien Kaukasus Centralasien Kaspiska
""".split()

ORGS = """
CSTO Nato EU FN OSSE SCO EAEU IMF Världsbanken Gazprom Rosatom Kazatomprom Lukoil Chevron
Shell Equinor Amnesty Interpol Kreml Riksdagen Regeringskansliet Utrikesdepartementet
Försvarsmakten Säpo FOI Sida Migrationsverket Europaparlamentet Europarådet ОДКБ
""".split()
ORGS_MULTI = [
    "Human Rights Watch", "Röda korset", "Läkare utan gränser", "Eurasiska ekonomiska unionen",
    "Organisationen för kollektiv säkerhet", "Internationella valutafonden",
]  # fmt: skip

COMPANIES = """
Volvo Ericsson Saab Vattenfall Scania Northvolt Spotify Klarna SEB Swedbank Nordea
Handelsbanken Ikea Sandvik Boliden LKAB SSAB Electrolux Husqvarna Telia Tele2 Skanska
Essity Investor Atlas Assa Alfa Epiroc Hexagon Getinge
""".split()

FIRST_NAMES = """
Anna Erik Maria Lars Karin Anders Eva Johan Lena Per Kristina Mikael Sara Jonas Emma
Magnus Ulf Ingrid Peter Sofia Nursultan Kassym Dariga Askar Aigerim Ermek Bakyt Dinara
Sergej Vladimir Olga Natalja Dmitrij Ivan Jelena Aleksandr Timur Rustam Gulnara Ainur
Zjomart Karim Alichan Marat Saltanat Mukhtar Sadyr Emomali Sjavkat Nikol Ilham Aleksandr
Jens Ursula Josep Antonio Emmanuel Olaf Ann Magdalena Ulf Tobias Pål Ebba Jimmie Nooshi
""".split()
LAST_NAMES = """
Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson
Pettersson Jonsson Jansson Hansson Bengtsson Lindberg Lindqvist Lindström Berglund
Tokajev Nazarbajev Masimov Smailov Mamin Abajev Sagintajev Tasjijev Ablyazov Zjaparov
Mirzijojev Rahmon Pasjinian Alijev Lukasjenko Putin Lavrov Sjojgu Medvedev Pesjkov
Zelenskyj Kuleba Stoltenberg Borrell Guterres Macron Scholz Kristersson Billström Linde
Andersson Åkesson Dadgostar Busch Forssmed Jonson Tidö Wallström Bildt Löfven
""".split()

WATCHED = [
    "Kazakstan", "Kazakstans", "CSTO", "CSTO:s", "CSTO-styrkorna", "ОДКБ", "Tokajev",
    "Tokajevs", "Almaty", "Astana", "Nur-Sultan", "försvarsalliansen", "Kazakstan-Ryssland",
    "kazakiska", "kazakisk", "Tokajév", "Kazán",
]  # fmt: skip

SOURCES = [
    ("svt-nyheter", "www.svt.se"), ("dn", "www.dn.se"), ("svd", "www.svd.se"),
    ("aftonbladet", "www.aftonbladet.se"), ("expressen", "www.expressen.se"), ("gp", "www.gp.se"),
    ("sydsvenskan", "www.sydsvenskan.se"), ("sr-ekot", "sverigesradio.se"), ("tt", "tt.se"),
]  # fmt: skip
SECTIONS = ["nyheter", "utrikes", "inrikes", "ekonomi", "sport", "kultur", "debatt"]


def genitive(word: str) -> str:
    return word if word[-1] in "sxz" else f"{word}s"


@dataclass
class Vocabulary:
    topics: dict[str, list[str]]
    persons: list[tuple[str, str]]
    famous: list[tuple[str, str]]

    @classmethod
    def build(cls, rng: random.Random) -> Vocabulary:
        topics = {name: words.split() for name, words in TOPICS.items()}
        persons = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(persons)
        famous = [
            ("Kassym-Zjomart", "Tokajev"), ("Nursultan", "Nazarbajev"), ("Vladimir", "Putin"),
            ("Sergej", "Lavrov"), ("Aleksandr", "Lukasjenko"), ("Nikol", "Pasjinian"),
            ("Sadyr", "Zjaparov"), ("Sjavkat", "Mirzijojev"), ("Emomali", "Rahmon"),
            ("Karim", "Masimov"), ("Ulf", "Kristersson"), ("Tobias", "Billström"),
            ("Josep", "Borrell"), ("Jens", "Stoltenberg"), ("Antonio", "Guterres"),
        ]  # fmt: skip
        return cls(topics, persons, famous)


# --- Articles ----------------------------------------------------------------------------


def zipf_weights(count: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(count)]


class ArticleWriter:
    def __init__(self, vocab: Vocabulary, rng: random.Random) -> None:
        self.vocab = vocab
        self.rng = rng
        self.general_weights = zipf_weights(len(GENERAL))

    def article(self, number: int) -> Document:
        rng = self.rng
        topics = rng.sample(sorted(self.vocab.topics), rng.choice([1, 1, 2]))
        focus = self._focus_entities()
        title = self._sentence(topics, focus, rng.randint(6, 10), entity_share=0.35)
        summary = " ".join(self._sentence(topics, focus, rng.randint(12, 20)) for _ in range(2))
        paragraphs = []
        words = 0
        while words < 460:
            sentences = [self._sentence(topics, focus, rng.randint(8, 22)) for _ in range(4)]
            paragraphs.append(" ".join(sentences))
            words += sum(len(s.split()) for s in sentences)
        name, domain = rng.choice(SOURCES)
        section = rng.choice(SECTIONS)
        url = f"https://{domain}/{section}/{'-'.join(title.lower().split()[:4])}-{number}"
        lang = "sv" if rng.random() < 0.95 else "en"
        return Document(title, summary, "\n\n".join(paragraphs), name, url, lang)

    def _focus_entities(self) -> list[str]:
        rng, vocab = self.rng, self.vocab
        focus = rng.sample(PLACES, rng.randint(1, 2)) + rng.sample(ORGS, rng.randint(0, 1))
        for first, last in rng.sample(vocab.famous, rng.randint(0, 1)) + rng.sample(
            vocab.persons[:3000], rng.randint(0, 2)
        ):
            focus += [f"{first} {last}", last, genitive(last)]
        if rng.random() < 0.3:
            focus.append(rng.choice(COMPANIES))
        if rng.random() < 0.1:
            focus.append(rng.choice(ORGS_MULTI))
        if rng.random() < 0.08:  # the monitor's own subject turns up now and then
            focus += rng.sample(WATCHED, 4)
        return focus

    def _sentence(self, topics: list[str], focus: list[str], length: int, entity_share: float = 0.08) -> str:
        rng = self.rng
        words = []
        for _ in range(length):
            roll = rng.random()
            if roll < entity_share:
                words.append(self._entity(focus))
            elif roll < entity_share + 0.2:
                topic_words = self.vocab.topics[rng.choice(topics)]
                words.append(rng.choice(topic_words))
            else:
                words.append(rng.choices(GENERAL, self.general_weights)[0])
            if rng.random() < 0.06:
                words[-1] += ","
        words[0] = words[0][:1].upper() + words[0][1:]
        return " ".join(words) + rng.choice([".", ".", ".", "!", "?", ":"])

    def _entity(self, focus: list[str]) -> str:
        rng = self.rng
        entity = rng.choice(focus) if rng.random() < 0.97 else rng.choice(PLACES)
        roll = rng.random()
        if roll < 0.2 and " " not in entity:
            return genitive(entity)
        if roll < 0.25:  # compounds glued with a hyphen: CSTO-styrkorna, Kazakstan-Ryssland
            return f"{entity}-{rng.choice(self.vocab.topics['militär'])}"
        return entity


# --- Watchlists --------------------------------------------------------------------------


# Surnames of the long tail of the fixed mix: two syllables that make no name of LAST_NAMES,
# so that no article names them.
SYLLABLES = "Ber Lind Holm Vik Strand Gren Dal Sjö Mark Fors Ek Ås Hed Ryd Sand Tor".split()
TAIL_NAMES = [
    f"{head}{tail.lower()}" for head in SYLLABLES for tail in SYLLABLES
    if head != tail and f"{head}{tail.lower()}" not in LAST_NAMES
]  # fmt: skip
FIXED_BASE = 10_000  # the fixed mix: watchlists past this many follow the long tail


class WatchlistWriter:
    def __init__(self, vocab: Vocabulary, rng: random.Random) -> None:
        self.vocab = vocab
        self.rng = rng
        self.tail = False  # whether to follow a person of the long tail

    def query(self) -> str:
        rng = self.rng
        size = rng.randint(5, 30)
        if rng.random() < 0.05:  # an operator-free list: every word must be there
            return " ".join(self._anchor_terms()[0] for _ in range(5))
        anchors = self._anchor_terms()
        if rng.random() < 0.25:  # two subjects, either will do
            anchors += self._anchor_terms()
        topics = rng.sample(sorted(self.vocab.topics), rng.randint(1, 2))
        context_size = max(2, size - len(anchors) - 3)
        groups = self._split(
            [self._topic_term(rng.choice(topics)) for _ in range(context_size)],
            rng.randint(1, 2),
        )
        anchor = _group(anchors)
        if rng.random() < 0.2:
            near = f"{rng.choice(anchors)} NEAR/{rng.randint(3, 12)} {_group(groups.pop())}"
            parts = [anchor, near, *map(_group, groups)]
        else:
            parts = [anchor, *map(_group, groups)]
        if rng.random() < 0.15:
            parts[0] = f"title:{anchor}"
        query = " AND ".join(parts)
        if rng.random() < 0.25:
            nots = [self._topic_term(rng.choice(sorted(self.vocab.topics))) for _ in range(3)]
            query += f" NOT {_group(nots[: rng.randint(1, 3)])}"
        if rng.random() < 0.2:
            scope = rng.choice(["source:svt*", "lang:sv", "url:*/utrikes/*", "source:(dn OR svd)"])
            query += f" {scope}"
        return query

    def _split(self, terms: list[str], count: int) -> list[list[str]]:
        cut = max(1, len(terms) // count)
        return [terms[:cut], terms[cut:]] if count == 2 and len(terms) > cut else [terms]

    def _anchor_terms(self) -> list[str]:
        """Ways of writing one entity: the subject a watchlist follows."""
        rng, vocab = self.rng, self.vocab
        if self.tail:
            first, last = rng.choice(FIRST_NAMES), rng.choice(TAIL_NAMES)
            variants = [f'"{first} {last}"', f'"{first} {genitive(last)}"', f"{last}*"]
            return rng.sample(variants, rng.randint(1, 2))
        kind = rng.random()
        if kind < 0.4:
            if rng.random() < 0.1:
                first, last = rng.choice(vocab.famous)
                variants = [f'"{first} {last}"', last, f"{last}*"]
            else:  # a common surname alone would catch everyone: the full name
                first, last = rng.choice(vocab.persons)
                variants = [f'"{first} {last}"', f'"{first} {genitive(last)}"']
        elif kind < 0.65:
            place = rng.choice(PLACES)
            variants = [place, f"{place}*", f'"{place}"']
        elif kind < 0.8:
            org = rng.choice(ORGS)
            variants = [org, f"{{{org}}}", f'"{rng.choice(ORGS_MULTI)}"']
        else:
            company = rng.choice(COMPANIES)
            variants = [company, f"{company}*", f"{{{company}}}"]
        return rng.sample(variants, rng.randint(1, 2))

    def _topic_term(self, topic: str) -> str:
        rng = self.rng
        word = rng.choice(self.vocab.topics[topic])
        roll = rng.random() if word.isalpha() else 1.0  # wildcards take letters only
        if roll < 0.15 and len(word) > 5:
            return f"{word[:5]}*"
        if roll < 0.22 and len(word) > 6:
            return f"*{word[1:6]}*"
        if roll < 0.3:
            return f'"{word}"'
        return word


def _group(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def watchlists(count: int, vocab: Vocabulary, seed: int, mix: str = "natural") -> dict[str, str]:
    writer = WatchlistWriter(vocab, random.Random(seed))
    queries = {}
    for n in range(count):
        writer.tail = mix == "fixed" and n >= FIXED_BASE
        queries[f"watch-{n:05d}"] = writer.query()
    return queries


# --- The naive loop: each watchlist on its own, with its own regexes ----------------------


@dataclass
class NaiveArticle:
    """Each field as three space-joined strings (written, folded, stemmed words)."""

    written: list[str]
    folded: list[str]
    stemmed: list[str]
    doc: Document

    @classmethod
    def of(cls, doc: Document) -> NaiveArticle:
        fields = [WORD_RE.findall(nfc(f)) for f in (doc.title, doc.summary, doc.text)]
        folded = [[fold(word) for word in words] for words in fields]
        return cls(
            [_joined(words) for words in fields],
            [_joined(words) for words in folded],
            [_joined([stem(word) for word in words]) for words in folded],
            doc,
        )


def _joined(words: list[str]) -> str:
    return " " + " ".join(words) + " "


# (field, first word, last word) of each match; None when the node is false
NaiveSpans = set[tuple[int, int, int]] | None
NaiveEval = Callable[[NaiveArticle, tuple[int, ...]], NaiveSpans]


def naive_compile(node: Node) -> NaiveEval:
    """Compiles a query to nested closures, each term to its own regex."""
    if isinstance(node, Term | Phrase):
        return _naive_regex(node)
    if isinstance(node, Meta):
        return _naive_meta(node)
    if isinstance(node, Scope):
        child = naive_compile(node.child)
        field = ("title", "summary", "text").index(node.field)
        return lambda art, fields: child(art, tuple(f for f in fields if f == field))
    if isinstance(node, Not):
        child = naive_compile(node.child)
        return lambda art, fields: set() if child(art, fields) is None else None
    if isinstance(node, Near):
        return _naive_near(naive_compile(node.left), naive_compile(node.right), node.distance)
    children = [naive_compile(child) for child in node.children]
    return _naive_and(children) if isinstance(node, And) else _naive_or(children)


def _naive_regex(node: Term | Phrase) -> NaiveEval:
    parts = node.parts if isinstance(node, Phrase) else (node,)
    mode = parts[0].mode
    pieces = []
    for part in parts:
        if part.mode is Mode.WILDCARD:
            pieces.append(
                "".join("[^ ]*" if c == "*" else "[^ ]" if c == "?" else re.escape(c) for c in part.text)
            )
        else:
            pieces.append(re.escape(stem(part.text) if part.mode is Mode.STEM else part.text))
    regex = re.compile("(?<= )" + " ".join(pieces) + "(?= )")
    length = len(parts) - 1
    attribute = {Mode.STEM: "stemmed", Mode.CASE: "written"}.get(mode, "folded")

    def evaluate(art: NaiveArticle, fields: tuple[int, ...]) -> NaiveSpans:
        found = set()
        for field in fields:
            subject = getattr(art, attribute)[field]
            for match in regex.finditer(subject):
                first = subject.count(" ", 0, match.start()) - 1
                found.add((field, first, first + length))
        return found or None

    return evaluate


def _naive_meta(node: Meta) -> NaiveEval:
    glob = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in node.pattern))

    def evaluate(art: NaiveArticle, fields: tuple[int, ...]) -> NaiveSpans:
        value = getattr(art.doc, node.field).lower()
        values = [value, re.split("[-_]", value)[0]] if node.field == "lang" else [value]
        if node.literal:
            return set() if node.pattern in values else None
        return set() if any(glob.fullmatch(v) for v in values) else None

    return evaluate


def _naive_and(children: list[NaiveEval]) -> NaiveEval:
    def evaluate(art: NaiveArticle, fields: tuple[int, ...]) -> NaiveSpans:
        spans: set[tuple[int, int, int]] = set()
        for child in children:
            found = child(art, fields)
            if found is None:
                return None
            spans |= found
        return spans

    return evaluate


def _naive_or(children: list[NaiveEval]) -> NaiveEval:
    def evaluate(art: NaiveArticle, fields: tuple[int, ...]) -> NaiveSpans:
        results = [child(art, fields) for child in children]
        true = [found for found in results if found is not None]
        return set().union(*true) if true else None

    return evaluate


def _naive_near(left: NaiveEval, right: NaiveEval, distance: int) -> NaiveEval:
    def evaluate(art: NaiveArticle, fields: tuple[int, ...]) -> NaiveSpans:
        ones, others = left(art, fields), right(art, fields)
        if not ones or not others:
            return None
        found = set()
        for one in ones:
            for other in others:
                gap = max(0, other[1] - one[2], one[1] - other[2])
                if one[0] == other[0] and gap <= distance:
                    found |= {one, other}
        return found or None

    return evaluate


class NaiveMatcher:
    def __init__(self, queries: dict[str, str]) -> None:
        self.compiled = [(name, naive_compile(parse_query(q))) for name, q in queries.items()]

    def match(self, doc: Document) -> list[str]:
        art = NaiveArticle.of(doc)
        return [name for name, evaluate in self.compiled if evaluate(art, (0, 1, 2)) is not None]


# --- Running -----------------------------------------------------------------------------


@dataclass
class Row:
    watchlists: int
    mix: str
    compile_seconds: float
    memory_built: float  # MB of resident memory the Matcher took to build
    memory_after: float  # the same after all the passes (with its cache of compiled forms)
    engine_passes: list[float]  # articles per second in each pass, the first with a cold cache
    engine_articles: int
    shown_passes: list[float]  # the same, also working out every hit's words and snippet
    naive_rate: float
    naive_articles: int
    hits_per_article: float
    same: bool

    @property
    def engine_rate(self) -> float:
        return statistics.median(self.engine_passes)

    @property
    def shown_rate(self) -> float:
        return statistics.median(self.shown_passes)


PASSES = 3  # the engine's rates are the median of this many passes over all the articles


def rate(run: Callable[[Document], Iterable[str]], docs: list[Document]) -> tuple[float, list[list[str]]]:
    """Articles per second, and the names of the watchlists matched in each article. Only the
    names are kept: a hit holds on to its article until it is dropped, as in the daemon."""
    results = []
    start = time.perf_counter()
    for doc in docs:
        results.append(sorted(run(doc)))
    return len(docs) / (time.perf_counter() - start), results


def resident_mb() -> float:
    """The resident memory of this process, in MB (after a garbage collection)."""
    gc.collect()
    with open("/proc/self/status") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kilobytes / 1024


def measure(queries: dict[str, str], docs: list[Document], naive_articles: int, mix: str) -> Row:
    before = resident_mb()
    started = time.perf_counter()
    matcher = Matcher(queries)
    compile_seconds = time.perf_counter() - started
    memory_built = resident_mb() - before
    # Passes in turn, so that a slow spell of the machine falls on both.
    engine_passes, shown_passes = [], []
    for _ in range(PASSES):
        engine_rate, engine_results = rate(matcher.match, docs)
        engine_passes.append(engine_rate)
        shown_passes.append(rate(lambda doc: shown(matcher.match(doc)), docs)[0])
    memory_after = resident_mb() - before
    naive_rate, naive_results = rate(NaiveMatcher(queries).match, docs[:naive_articles])
    same = all(
        found == expected for found, expected in zip(engine_results, naive_results, strict=False)
    )
    hits = sum(len(found) for found in engine_results) / len(docs)
    return Row(
        len(queries), mix, compile_seconds, memory_built, memory_after, engine_passes, len(docs),
        shown_passes, naive_rate, naive_articles, hits, same,
    )


def shown(hits: dict[str, Hit]) -> dict[str, Hit]:
    """What an alert shows of each hit, worked out as the daemon does for every match."""
    for hit in hits.values():
        _ = hit.words, hit.snippet, hit.snippet_spans
    return hits


def print_table(rows: list[Row]) -> None:
    print(
        f"{'watchlists':>10} {'mix':>7} {'compile s':>9} {'memory MB':>9} {'engine art/s':>12} "
        f"{'(articles)':>10} {'+ snippets':>10} "
        f"{'naive art/s':>11} {'(articles)':>10} {'ratio':>7} {'hits/art':>8}  same matches"
    )
    for row in rows:
        print(
            f"{row.watchlists:>10,} {row.mix:>7} {row.compile_seconds:>9.2f} "
            f"{row.memory_built:>4.0f}/{row.memory_after:<4.0f} {row.engine_rate:>12,.0f} "
            f"{row.engine_articles:>10,} {row.shown_rate:>10,.0f} "
            f"{row.naive_rate:>11,.1f} {row.naive_articles:>10,} "
            f"{row.engine_rate / row.naive_rate:>6,.0f}x {row.hits_per_article:>8.1f}  "
            f"{'yes' if row.same else 'NO'} (on the {row.naive_articles:,} articles the naive loop ran)"
        )
    print("memory MB: resident memory taken by building the Matcher / after all the passes")
    print(f"\nengine art/s and + snippets: median of {PASSES} passes over all the articles; each pass:")
    for row in rows:
        engine = " / ".join(f"{value:,.0f}" for value in row.engine_passes)
        snippets = " / ".join(f"{value:,.0f}" for value in row.shown_passes)
        print(f"{row.watchlists:>10,} {row.mix:>7}  engine {engine}   + snippets {snippets}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--watchlists", type=int, nargs="+", default=[10, 1_000, 10_000])
    args = parser.parse_args()

    vocab = Vocabulary.build(random.Random(args.seed))
    writer = ArticleWriter(vocab, random.Random(args.seed + 1))
    docs = [writer.article(n) for n in range(args.articles)]
    words = sum(len(WORD_RE.findall(f"{d.title} {d.summary} {d.text}")) for d in docs)
    print(f"{len(docs):,} articles of {words / len(docs):.0f} words on average; one process, one core")
    print("the naive loop runs once, on the first N articles only, to keep the run to a few minutes")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    rows = []
    for count in args.watchlists:
        # The naive loop's cost grows with the watchlists: fewer articles for the larger runs.
        naive_articles = min(len(docs), 200 if count == 1_000 else max(3, 300_000 // count))
        for mix in ("natural", "fixed") if count > FIXED_BASE else ("natural",):
            queries = watchlists(count, vocab, args.seed + count, mix)
            rows.append(measure(queries, docs, naive_articles, mix))
    print_table(rows)

    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    largest = max(args.watchlists)
    queries = watchlists(largest, vocab, args.seed + largest)
    cold_rate, _ = rate(Matcher(queries, token_cache_size=0).match, docs[:500])
    print(f"\nengine without its cache of words seen before, {largest:,} watchlists: {cold_rate:,.0f} art/s")
    for row in sorted(rows, key=lambda row: (row.watchlists, row.mix == "natural")):
        label = "match:" if row.mix == "natural" else "match (fixed hit rate):"
        print(
            f"{label} N watchlists={row.watchlists} engine={row.engine_rate:.0f} art/s "
            f"naive={row.naive_rate:.1f} art/s ratio={row.engine_rate / row.naive_rate:.0f}x "
            f"compile_s={row.compile_seconds:.1f} memory_mb={row.memory_built:.0f}/{row.memory_after:.0f} "
            f"hits_per_article={row.hits_per_article:.1f}"
        )


if __name__ == "__main__":
    main()
