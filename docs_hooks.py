"""MkDocs hooks (mkdocs.yml ``hooks``).

* Every page under docs/ is reachable from the nav: pages listed in ``nav`` keep their
  place; the others (pages added by anyone, without an edit to mkdocs.yml) are appended,
  sorted, under "Notes", titled by their first heading.
* The docstrings use Sphinx roles (``:class:`ocp.Trajectory```); Markdown has none, so they
  are rendered as inline code (``~a.b.C`` as ``C``), in docstrings and pages alike.
"""
from __future__ import annotations

import pathlib
import re

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

SECTION = "Notes"


def listed(nav) -> set:
    """Every page path named anywhere in a nav tree."""
    found = set()
    for item in nav or []:
        values = item.values() if isinstance(item, dict) else [item]
        for value in values:
            if isinstance(value, list):
                found |= listed(value)
            elif isinstance(value, str):
                found.add(value)
    return found


def unlisted_pages(docs_dir, nav) -> list:
    """docs/**/*.md not in ``nav``, as paths relative to ``docs_dir``, sorted."""
    root = pathlib.Path(docs_dir)
    pages = sorted(path.relative_to(root).as_posix() for path in root.rglob("*.md"))
    return [page for page in pages if page not in listed(nav)]


def title(path: pathlib.Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ")


ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|py:[a-z]+):`(~?)([^`]+)`")


def strip_roles(text: str) -> str:
    """``:role:`target``` → ```target``` (``~a.b.C`` → ```C```)."""
    return ROLE.sub(lambda match: f"`{match[2].rsplit('.', 1)[-1] if match[1] else match[2]}`", text)


class _Roles(Preprocessor):
    def run(self, lines):
        return strip_roles("\n".join(lines)).split("\n")


class RolesExtension(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(_Roles(md), "sphinx_roles", 30)


@event_priority(100)      # before mkdocstrings reads the Markdown extensions
def on_config(config, **kwargs):
    config["markdown_extensions"].append(RolesExtension())
    return add_unlisted(config)


def add_unlisted(config):
    """Append the pages ``nav`` does not list under :data:`SECTION` (config: docs_dir, nav)."""
    missing = unlisted_pages(config["docs_dir"], config["nav"])
    if missing and config["nav"] is not None:
        root = pathlib.Path(config["docs_dir"])
        config["nav"].append({SECTION: [{title(root / page): page} for page in missing]})
    return config
