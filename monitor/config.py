"""Load config.yaml once, validate it, and return typed objects.

Every error names the key path (``sources[2].interval``) and the line in the file, so a
user can find the mistake without reading code. No other module reads the file or the
environment for settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from monitor import __version__
from monitor.errors import ConfigError, QueryError
from monitor.models import (
    DEFAULT_GIVE_UP_AFTER,
    DEFAULT_RETRY_WITHIN,
    DEFAULT_TIMEZONE,
    DIGEST,
    IMMEDIATE,
    AppriseNotifier,
    ClusterSettings,
    Config,
    CrawlSettings,
    EmailNotifier,
    HttpSettings,
    LogNotifier,
    Notifier,
    OperationsSettings,
    RetentionSettings,
    SmtpSettings,
    Source,
    Watchlist,
    WebhookNotifier,
)

DEFAULT_INTERVAL = 600
DEFAULT_MAX_AGE = 2 * 86400
MIN_INTERVAL = 5
DEFAULT_USER_AGENT = f"monitor/{__version__} (news monitoring)"
SOURCE_TYPES = ("feed", "sitemap", "page")
NOTIFIER_TYPES = ("email", "webhook", "apprise", "log")
DELIVERY_MODES = (IMMEDIATE, DIGEST)
LOG_FORMATS = ("text", "json")
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
REDIS_SCHEMES = ("redis", "rediss")
POSTGRES_SCHEMES = ("postgresql", "postgres")
MAX_SHARDS = 1024
MAX_EXTRACT_WORKERS = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MISSING = object()
# Large enough for 100,000 watchlists; a bigger file is a mistake or an attack.
MAX_CONFIG_BYTES = 16 * 2**20
# Shorter values from the environment are hidden only where they are a whole quoted value:
# hiding every "1" or "sv" would garble the line numbers and names around them.
MIN_SCRUBBED = 4
_STANDARD = "tag:yaml.org,2002:"
_TAGS = {
    yaml.ScalarNode: {_STANDARD + t for t in ("str", "int", "float", "bool", "null", "timestamp")},
    yaml.SequenceNode: {_STANDARD + "seq"},
    yaml.MappingNode: {_STANDARD + "map"},
}


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """--config, else $MONITOR_CONFIG, else ./config.yaml."""
    return Path(cli_value or environ.get("MONITOR_CONFIG") or "config.yaml")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    env = _Env(os.environ if environ is None else environ)
    root = _compose(_read(path), path)
    if root is None:
        raise ConfigError(f"{path}: the file is empty")
    lines: dict[str, int] = {}
    try:
        data = _to_python(root, "", lines, env)
        return _build(_Section(data, "", lines), path.resolve())
    except ConfigError as exc:
        # A message may quote a value; one that came from the environment may be a secret.
        raise ConfigError(env.scrub(str(exc))) from None


def _read(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the file is larger than {MAX_CONFIG_BYTES // 2**20} MB, "
                          f"the most a config may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line})") from None


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader, composing nodes only; anchors and aliases are refused outright (a few
    hundred bytes of nested aliases expand to gigabytes, and a config does not need them)."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML anchors and aliases "
                              f"are not supported; write the value out")
        return super().compose_node(parent, index)


def _compose(text: str, path: Path) -> yaml.Node | None:
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_node()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


class _Env:
    """The environment for ${VAR} substitution, remembering every value it put into the config
    so that error messages can show where a value came from instead of the value."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.substituted: dict[str, str] = {}  # value after substitution → the text in the file

    def scrub(self, message: str) -> str:
        for value, written in sorted(self.substituted.items(), key=lambda kv: -len(kv[0])):
            shown = f"<from {written}>"
            message = message.replace(repr(value), shown)
            if len(value) >= MIN_SCRUBBED:
                message = message.replace(value, shown)
        for name, value in self.environ.items():
            if len(value) >= MIN_SCRUBBED and any(name in w for w in self.substituted.values()):
                message = message.replace(value, f"<from ${{{name}}}>")
        return message


# --- YAML nodes to Python, remembering the line of every key path -------------------------


def _to_python(node: yaml.Node, path: str, lines: dict[str, int], env: _Env) -> Any:
    lines[path] = node.start_mark.line + 1
    if node.tag not in _TAGS[type(node)]:
        raise ConfigError(f"{path or 'the file'}: the YAML tag {node.tag!r} is not supported "
                          f"(line {lines[path]}); a config holds plain values only")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(f"{child}: duplicate key (line {key_node.start_mark.line + 1})")
            out[key] = _to_python(value_node, child, lines, env)
            lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, f"{path}[{i}]", lines, env) for i, v in enumerate(node.value)]
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    if isinstance(value, str):
        expanded = _expand_env(value, path, lines[path], env.environ)
        if expanded != value:
            env.substituted[expanded] = value
        value = expanded
    return value


def _expand_env(value: str, path: str, line: int, env: Mapping[str, str]) -> str:
    def substitute(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set (line {line}); "
            f"set it, or write ${{{name}:-default}} to give a default"
        )

    return _ENV.sub(substitute, value)


# --- a small validating reader -------------------------------------------------------------


class _Section:
    """A mapping being validated: take() known keys, then done() rejects the rest."""

    def __init__(self, data: Any, path: str, lines: dict[str, int]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the file'}: expected a mapping{_at(lines, path)}")
        self.data, self.path, self.lines = data, path, lines
        self.known: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> ConfigError:
        key = self.key(name)
        return ConfigError(f"{key}: {message}{_at(self.lines, key)}")

    def take(self, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        self.known.add(name)
        if name not in self.data or self.data[name] is None:
            if default is _MISSING:
                raise ConfigError(f"{self.key(name)}: required key is missing{_at(self.lines, self.path)}")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def section(self, name: str, default: Any = _MISSING) -> _Section:
        value = self.take(name, dict, default)
        return _Section(value, self.key(name), self.lines)

    def items(self, name: str, default: Any = _MISSING) -> list[_Section]:
        values = self.take(name, list, default)
        return [_Section(v, f"{self.key(name)}[{i}]", self.lines) for i, v in enumerate(values)]

    def strings(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.take(name, (list, str), default)
        values = [value] if isinstance(value, str) else value
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                raise self.error(f"{name}[{i}]", f"expected a non-empty string, got {v!r}")
        return tuple(values)

    def done(self) -> None:
        for name in self.data:
            if name not in self.known:
                hint = difflib.get_close_matches(name, sorted(self.known), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                allowed = ", ".join(sorted(self.known))
                raise self.error(name, f"unknown key{suggestion} (allowed here: {allowed})")


def _at(lines: dict[str, int], path: str) -> str:
    return f" (line {lines[path]})" if path in lines else ""


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_duration(value: int | str) -> int:
    """'90s', '10m', '1h30m', '2d' or a number of seconds."""
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h)")
    return sum(int(n) * _UNITS[unit] for n, unit in parts)


# --- the sections ----------------------------------------------------------------------------


def _build(root: _Section, path: Path) -> Config:
    database = Path(root.take("database", str, "monitor.db"))
    if not database.is_absolute():
        database = path.parent / database
    crawl = _crawl_settings(root.section("crawl", {}), database.parent / "httpcache")
    sources = _unique(root.items("sources"), _source, "sources")
    notifiers = _unique(root.items("notifiers", []), _notifier, "notifiers")
    watchlists = _unique(root.items("watchlists", []), _watchlist, "watchlists")
    operations = _operations(root.section("operations", {}))
    templates = _templates(root, path)
    http = _http(root.section("http", None)) if root.data.get("http") is not None else None
    root.known.add("http")
    retention = _retention(root.section("retention", {}))
    log_format = root.take("log_format", str, "text")
    if log_format not in LOG_FORMATS:
        raise root.error("log_format", f"expected {' or '.join(LOG_FORMATS)}, got {log_format!r}")
    cluster = _cluster(root.section("cluster")) if root.data.get("cluster") is not None else None
    root.known.add("cluster")
    root.done()
    _check_references(root, watchlists, notifiers)
    _check_operations(root, operations, notifiers)
    return Config(
        path=path,
        database=database,
        sources=tuple(sources),
        watchlists=tuple(watchlists),
        notifiers=tuple(notifiers),
        crawl=crawl,
        operations=operations,
        templates=templates,
        http=http,
        retention=retention,
        log_format=log_format,
        cluster=cluster,
    )


def _unique(sections: list[_Section], build: Callable[[_Section], Any], what: str) -> list[Any]:
    built, seen = [], set()
    for section in sections:
        item = build(section)
        if item.name in seen:
            raise section.error("name", f"duplicate name {item.name!r} in {what}")
        seen.add(item.name)
        built.append(item)
    return built


def _name(s: _Section) -> str:
    name = s.take("name", str)
    if not _NAME.match(name):
        raise s.error("name", f"{name!r} must be letters, digits, '-', '_' or '.'")
    return name


def _duration(s: _Section, key: str, default: int, minimum: int = MIN_INTERVAL) -> int:
    raw = s.take(key, (str, int), default)
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise s.error(key, str(exc)) from None
    if seconds < minimum:
        raise s.error(key, f"must be at least {minimum}s, got {raw!r}")
    return seconds


def _seconds(s: _Section, key: str, default: float) -> float:
    """A timeout: a number of seconds (fractions allowed) or a duration such as 30s or 1m."""
    raw = s.take(key, (str, int, float), default)
    if isinstance(raw, str):
        try:
            raw = parse_duration(raw)
        except ValueError as exc:
            raise s.error(key, str(exc)) from None
    if raw <= 0:
        raise s.error(key, f"must be more than 0 seconds, got {raw!r}")
    return float(raw)


def _url(s: _Section, key: str) -> str:
    url = s.take(key, str)
    if not re.match(r"^https?://[^/\s]+", url):
        raise s.error(key, f"expected an http(s) URL, got {url!r}")
    return url


def _source(s: _Section) -> Source:
    name = _name(s)
    kind = s.take("type", str, "feed")
    if kind not in SOURCE_TYPES:
        raise s.error("type", f"unknown source type {kind!r} (known: {', '.join(SOURCE_TYPES)})")
    source = Source(
        name=name,
        type=kind,
        url=_url(s, "url"),
        interval=_duration(s, "interval", DEFAULT_INTERVAL),
        full_text=s.take("full_text", bool, True),
        languages=_languages(s),
        delay=s.take("delay", float, None),
        concurrency=s.take("concurrency", int, None),
        # Keys of one source type only: taking them only there makes done() reject the others.
        max_age=_duration(s, "max_age", DEFAULT_MAX_AGE) if kind == "sitemap" else DEFAULT_MAX_AGE,
        follow=_selector(s) if kind == "page" else None,
        store_text=s.take("store_text", bool, True),
        obey_robots=s.take("obey_robots", bool, True),
    )
    s.done()
    if source.type != "feed" and not source.full_text:
        raise s.error("full_text", f"a {source.type} source finds links only; it needs full_text: true")
    return source


def _languages(s: _Section) -> tuple[str, ...]:
    codes = s.strings("languages", ())
    for i, code in enumerate(codes):
        if not re.fullmatch(r"[a-z]{2,3}", code):
            raise s.error(f"languages[{i}]", f"expected a language code such as sv or en, got {code!r}")
    return codes


def _selector(s: _Section) -> str | None:
    from cssselect import GenericTranslator, SelectorError

    selector = s.take("follow", str, None)
    if selector is not None:
        try:
            GenericTranslator().css_to_xpath(selector)
        except SelectorError as exc:
            raise s.error("follow", f"not a CSS selector: {exc}") from None
    return selector


def _watchlist(s: _Section) -> Watchlist:
    from monitor.rules import (
        parse_query,  # the rules package is pure; imported late to keep config light
    )

    name = _name(s)
    query = s.take("query", str)
    try:
        parse_query(query)
    except QueryError as exc:
        raise ConfigError(f"{s.key('query')}{_at(s.lines, s.key('query'))}: {exc}") from None
    delivery = s.take("delivery", str, IMMEDIATE)
    if delivery not in DELIVERY_MODES:
        raise s.error("delivery", f"expected {' or '.join(DELIVERY_MODES)}, got {delivery!r}")
    timezone = _timezone(s)
    watchlist = Watchlist(name=name, query=query, notify=s.strings("notify", ()),
                          languages=_languages(s), delivery=delivery,
                          schedule=_schedule(s, timezone), timezone=timezone,
                          send_empty=s.take("send_empty", bool, False),
                          max_per_hour=s.take("max_per_hour", int, None))
    s.done()
    if watchlist.max_per_hour is not None:
        if watchlist.max_per_hour < 1:
            raise s.error("max_per_hour", f"must be at least 1, got {watchlist.max_per_hour}")
        if delivery == DIGEST:
            raise s.error("max_per_hour", "a digest watchlist sends no immediate alerts to limit; "
                                          "use delivery: immediate with max_per_hour")
    if watchlist.send_empty and watchlist.digest_schedule is None:
        raise s.error("send_empty", "only a watchlist with a digest (delivery: digest, or a "
                                    "schedule) sends digests")
    return watchlist


def _timezone(s: _Section) -> str:
    name = s.take("timezone", str, DEFAULT_TIMEZONE)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise s.error("timezone", f"unknown time zone {name!r} (use an IANA name such as "
                                  f"Europe/Stockholm or UTC)") from None
    return name


def _schedule(s: _Section, timezone: str) -> str | None:
    expression = s.take("schedule", str, None)
    if expression is not None:
        # Only for configs with digests: APScheduler brings asyncio and entry points along.
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(expression, timezone=timezone)
        except ValueError as exc:
            raise s.error("schedule", f"not a cron expression (minute hour day month weekday, "
                                      f"e.g. '0 7 * * 1-5'): {exc}") from None
    return expression


def _notifier(s: _Section) -> Notifier:
    name = _name(s)
    kind = s.take("type", str)
    builders = {"email": _email, "webhook": _webhook, "apprise": _apprise, "log": _log}
    if kind not in builders:
        raise s.error("type", f"unknown notifier type {kind!r} (known: {', '.join(NOTIFIER_TYPES)})")
    notifier = dataclasses.replace(
        builders[kind](s, name),
        retry_within=float(_duration(s, "retry_within", int(DEFAULT_RETRY_WITHIN), minimum=0)),
        give_up_after=_duration(s, "give_up_after", DEFAULT_GIVE_UP_AFTER, minimum=1),
    )
    s.done()
    return notifier


def _apprise(s: _Section, name: str) -> AppriseNotifier:
    import apprise  # loaded only by configs that use it

    urls = s.strings("urls")
    for i, url in enumerate(urls):
        if not apprise.Apprise().add(url):
            # Not quoted: an Apprise URL carries its service's token.
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise s.error(f"urls[{i}]", f"not an Apprise URL Apprise understands (scheme "
                                        f"{scheme!r}); see the Apprise wiki for each service's form")
    return AppriseNotifier(name=name, type="apprise", urls=urls, timeout=_seconds(s, "timeout", 30.0))


def _log(s: _Section, name: str) -> LogNotifier:
    return LogNotifier(name=name, type="log")


def _email(s: _Section, name: str) -> EmailNotifier:
    to = s.strings("to")
    sender = s.take("from", str)
    for i, address in enumerate((*to, sender)):
        if "@" not in address:
            key = "from" if i == len(to) else f"to[{i}]"
            raise s.error(key, f"not an email address: {address!r}")
    smtp = s.section("smtp")
    settings = SmtpSettings(
        host=smtp.take("host", str),
        port=smtp.take("port", int, 587),
        starttls=smtp.take("starttls", bool, True),
        ssl=smtp.take("ssl", bool, False),
        username=smtp.take("username", str, None) or None,
        password=smtp.take("password", str, None) or None,
        timeout=_seconds(smtp, "timeout", 30.0),
    )
    smtp.done()
    if settings.ssl and settings.starttls:
        raise smtp.error("starttls", "choose either ssl (implicit TLS) or starttls, not both")
    return EmailNotifier(name=name, type="email", to=to, sender=sender, smtp=settings)


def _webhook(s: _Section, name: str) -> WebhookNotifier:
    headers = s.take("headers", dict, {})
    return WebhookNotifier(
        name=name,
        type="webhook",
        url=_url(s, "url"),
        secret=s.take("secret", str, None) or None,
        timeout=_seconds(s, "timeout", 15.0),
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
    )


def _operations(s: _Section) -> OperationsSettings:
    settings = OperationsSettings(
        notify=s.strings("notify", ()),
        alert_after=_duration(s, "alert_after", 6 * 3600, minimum=1),
        silent_after=_duration(s, "silent_after", 48 * 3600, minimum=1),
    )
    s.done()
    return settings


def _http(s: _Section) -> HttpSettings:
    """http: {listen: "127.0.0.1:8080", auth: {token: ...}}; a listener on another address than
    the loopback needs a token (the pages show what the monitor collected)."""
    listen = s.take("listen", str, "127.0.0.1:8080")
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise s.error("listen", str(exc)) from None
    auth = s.section("auth", {})
    token = auth.take("token", str, None) or None
    auth.done()
    s.done()
    if host not in LOCAL_HOSTS and token is None:
        raise s.error("listen", unprotected_listen(listen))
    return HttpSettings(host=host, port=port, token=token)


def _cluster(s: _Section) -> ClusterSettings:
    """cluster: {redis: "redis://…", database: "postgresql://…", shards: 16, lease: 15s}."""
    redis = s.take("redis", str)
    if urlsplit(redis).scheme not in REDIS_SCHEMES or not urlsplit(redis).hostname:
        raise s.error("redis", f"expected a URL such as redis://127.0.0.1:6379/0, got {_url_shape(redis)!r}")
    database = s.take("database", str)
    if urlsplit(database).scheme not in POSTGRES_SCHEMES:
        raise s.error("database", "expected a URL such as postgresql://monitor:PASSWORD@127.0.0.1/monitor,"
                                  f" got {_url_shape(database)!r}")
    shards = s.take("shards", int, ClusterSettings.shards)
    if not 1 <= shards <= MAX_SHARDS:
        raise s.error("shards", f"expected 1 to {MAX_SHARDS}, got {shards}")
    lease = _duration(s, "lease", ClusterSettings.lease, minimum=3)
    prefix = s.take("prefix", str, ClusterSettings.prefix)
    if not prefix or any(c.isspace() for c in prefix):
        raise s.error("prefix", f"expected a short key prefix without spaces, got {prefix!r}")
    s.done()
    return ClusterSettings(redis=redis, database=database, shards=shards, lease=lease, prefix=prefix)


def _url_shape(url: str) -> str:
    """A URL for an error message, without a password it may hold."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def parse_listen(listen: str) -> tuple[str, int]:
    """A listen address, HOST:PORT (an IPv6 host in brackets), as (host, port); ValueError
    saying what is wrong."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, got {listen!r}")
    return host, int(port_text)


def unprotected_listen(listen: str) -> str:
    """Why a listener off the loopback without a token is refused, and what to do."""
    return (f"{listen!r} is reachable from other machines: set http.auth.token "
            f"(e.g. token: \"${{MONITOR_WEB_TOKEN}}\") or listen on 127.0.0.1")


def _retention(s: _Section) -> RetentionSettings:
    text = _duration(s, "text", None, minimum=86400) if s.data.get("text") is not None else None
    articles = (_duration(s, "articles", None, minimum=86400)
                if s.data.get("articles") is not None else None)
    s.known.update({"text", "articles"})
    s.done()
    if text is not None and articles is not None and articles < text:
        raise s.error("articles", "must be at least as long as retention.text")
    return RetentionSettings(text=text, articles=articles)


def _templates(root: _Section, path: Path) -> Path | None:
    value = root.take("templates", str, None)
    if value is None:
        return None
    folder = Path(value)
    if not folder.is_absolute():
        folder = path.parent / folder
    if not folder.is_dir():
        raise root.error("templates", f"{str(folder)!r} is not a folder")
    from monitor.alerts.render import Renderer  # Jinja2 only for configs with templates

    try:
        Renderer(folder).check()
    except ValueError as exc:
        raise root.error("templates", f"a template in {str(folder)!r} does not compile: {exc}") from None
    return folder


def _crawl_settings(s: _Section, cache_dir: Path) -> CrawlSettings:
    settings = CrawlSettings(
        user_agent=_user_agent(s),
        timeout=_duration(s, "timeout", 30),
        max_size=s.take("max_size", int, 10 * 1024 * 1024),
        concurrency_per_domain=s.take("concurrency_per_domain", int, 2),
        delay=s.take("delay", float, 0.5),
        obey_robots=s.take("obey_robots", bool, True),
        max_backoff=_duration(s, "max_backoff", 4 * 3600),
        cache_dir=cache_dir if s.take("page_cache", bool, True) else None,
        allow_private=s.take("allow_private", bool, False),
        hosts=_hosts(s),
        extract_workers=_extract_workers(s),
        extract_timeout=_duration(s, "extract_timeout", 30, minimum=1),
    )
    s.done()
    return settings


def _extract_workers(s: _Section) -> int | None:
    """crawl.extract_workers: "auto" (one per usable core), or a number; 0 extracts in the
    crawler's own process."""
    value = s.take("extract_workers", (int, str), "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EXTRACT_WORKERS:
        raise s.error("extract_workers", f'expected "auto" or 0 to {MAX_EXTRACT_WORKERS}, got {value!r}')
    return value


def _hosts(s: _Section) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """crawl.hosts: host name → an IP address or a list of them, used instead of DNS."""
    hosts = s.section("hosts", {})
    pinned = []
    for name in list(hosts.data):
        host = str(name).strip().lower().rstrip(".")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", host):
            raise hosts.error(str(name), "expected a host name (no scheme, port or path)")
        addresses = hosts.strings(name)
        for i, address in enumerate(addresses):
            try:
                ipaddress.ip_address(address.strip())
            except ValueError:
                raise hosts.error(f"{name}[{i}]" if len(addresses) > 1 else name,
                                  f"expected an IP address, got {address!r}") from None
        pinned.append((host, tuple(a.strip() for a in addresses)))
    hosts.done()
    return tuple(pinned)


def _user_agent(s: _Section) -> str:
    """The project's name, and the operator's contact so a site can reach whoever runs it."""
    contact = s.take("contact", str, None)
    agent = s.take("user_agent", str, None)
    if agent and contact:
        raise s.error("contact", "give either user_agent (the whole string) or contact, not both")
    return agent or (f"monitor/{__version__} (+{contact})" if contact else DEFAULT_USER_AGENT)


def _check_references(
    root: _Section, watchlists: list[Watchlist], notifiers: list[Notifier]
) -> None:
    for i, watchlist in enumerate(watchlists):
        for j, name in enumerate(watchlist.notify):
            _check_notifier(root, f"watchlists[{i}].notify[{j}]", name, notifiers)


def _check_operations(root: _Section, operations: OperationsSettings, notifiers: list[Notifier]) -> None:
    for j, name in enumerate(operations.notify):
        _check_notifier(root, f"operations.notify[{j}]", name, notifiers)


def _check_notifier(root: _Section, key: str, name: str, notifiers: list[Notifier]) -> None:
    defined = {n.name for n in notifiers}
    if name not in defined:
        hint = difflib.get_close_matches(name, sorted(defined), n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"{key}: notifier {name!r} is not defined under notifiers{suggestion}"
            f"{_at(root.lines, key)}"
        )
