"""Dependencies earn their place: every third-party import in monitor/ and spiders/ is declared
in pyproject.toml, every declared dependency is imported or says why not, and `monitor check`
starts without the crawler, the extractor or the web stack."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
OUR_PACKAGES = ("monitor", "spiders")
# What `monitor check` must not load: the crawl, extraction, delivery and web stacks, the
# event loop, and the scipy that datasketch used to pull in at every start.
NOT_FOR_CHECK = ("scrapy", "twisted", "trafilatura", "lxml", "py3langid", "aiohttp", "jinja2", "apprise",
                 "httpx", "sqlite_utils", "prometheus_client", "datasketch", "scipy", "asyncio")


def distribution_key(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503): case, '-', '_' and '.' alike."""
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_imports(roots: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every absolute import outside the
    standard library and our own packages, lazy ones inside functions included."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in OUR_PACKAGES:
                        found.setdefault(top, set()).add(path.relative_to(root.parent).as_posix())
    return found


def declared(pyproject_text: str) -> dict[str, str]:
    """Distribution key -> requirement string of [project] dependencies."""
    requirements = tomllib.loads(pyproject_text)["project"]["dependencies"]
    return {distribution_key(re.match(r"[A-Za-z0-9._-]+", r)[0]): r for r in requirements}


def undeclared(imports: Mapping[str, set[str]], declared_keys: Iterable[str],
               distributions: Mapping[str, list[str]]) -> list[str]:
    """One line per imported module whose distribution is not declared (or not installed)."""
    keys = set(declared_keys)
    problems = []
    for module, files in sorted(imports.items()):
        owners = distributions.get(module)
        if not owners:
            problems.append(f"{module} (imported in {', '.join(sorted(files))}) is not installed")
        elif not keys & {distribution_key(owner) for owner in owners}:
            problems.append(f"{module} comes from {owners[0]}, imported in {', '.join(sorted(files))} "
                            f"but not in pyproject.toml's dependencies")
    return problems


def unexplained(pyproject_text: str, imported_keys: set[str]) -> list[str]:
    """Declared dependencies no module imports and whose line, or the comment right above
    it, does not say why they are there."""
    lines = pyproject_text.splitlines()
    problems = []
    for key, requirement in declared(pyproject_text).items():
        if key in imported_keys:
            continue
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f'"{requirement}"'))
        if "#" not in lines[at] and not lines[at - 1].strip().startswith("#"):
            problems.append(f"{requirement} is declared but never imported: drop it or say why in a comment")
    return problems


def imported_distributions(imports: Iterable[str], distributions: Mapping[str, list[str]]) -> set[str]:
    return {distribution_key(owner) for module in imports for owner in distributions.get(module, ())}


def test_every_third_party_import_is_declared() -> None:
    imports = top_level_imports(REPO / package for package in OUR_PACKAGES)
    assert {"scrapy", "twisted", "w3lib", "lxml", "cssselect", "numpy"} <= imports.keys()
    text = PYPROJECT.read_text("utf-8")
    assert undeclared(imports, declared(text), packages_distributions()) == []


def test_every_declared_dependency_is_imported_or_says_why_not() -> None:
    text = PYPROJECT.read_text("utf-8")
    imports = top_level_imports(REPO / package for package in OUR_PACKAGES)
    assert unexplained(text, imported_distributions(imports, packages_distributions())) == []


def test_an_undeclared_import_is_caught(tmp_path: Path) -> None:
    package = tmp_path / "monitor"
    package.mkdir()
    (package / "fresh.py").write_text("import json\nimport monitor.models\n\n\ndef later():\n"
                                      "    from w3lib.url import canonicalize_url\n", "utf-8")
    imports = top_level_imports([package])
    assert imports == {"w3lib": {"monitor/fresh.py"}}
    text = PYPROJECT.read_text("utf-8").replace('    "w3lib>=2.5.0",\n', "")
    problems = undeclared(imports, declared(text), packages_distributions())
    assert problems == ["w3lib comes from w3lib, imported in monitor/fresh.py but not in "
                        "pyproject.toml's dependencies"]
    assert undeclared({"no_such_module_x": {"monitor/fresh.py"}}, declared(text), packages_distributions())


def test_an_unused_dependency_without_a_reason_is_caught() -> None:
    text = PYPROJECT.read_text("utf-8")
    imports = top_level_imports(REPO / package for package in OUR_PACKAGES)
    used = imported_distributions(imports, packages_distributions())
    with_stray = text.replace('    "numpy>=2.4.6",\n', '    "numpy>=2.4.6",\n    "tabulate>=0.9",\n')
    assert unexplained(with_stray, used) == [
        "tabulate>=0.9 is declared but never imported: drop it or say why in a comment"]
    explained = with_stray.replace('    "tabulate>=0.9",\n', '    "tabulate>=0.9",  # for the reports\n')
    assert unexplained(explained, used) == []


def test_check_loads_no_crawler_extractor_or_web_stack() -> None:
    # The check command in a fresh interpreter, then what it had imported.
    script = (
        "import json, sys\n"
        "from monitor.cli import main\n"
        "code = main(['--config', sys.argv[1], 'check'])\n"
        "sys.stderr.write(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "config.yaml")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] == 0 and "watchlists (" in result.stdout
    # The watchlists were compiled: the command did reach the matcher.
    assert "monitor.rules.matcher" in report["modules"]
    loaded = {module.partition(".")[0] for module in report["modules"]}
    assert loaded.isdisjoint(NOT_FOR_CHECK), sorted(loaded & set(NOT_FOR_CHECK))
