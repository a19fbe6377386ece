"""The documentation: the tutorials' Python code blocks run as written (in order, one
namespace per page, in a temporary directory), and every page under docs/ is reachable
from the site's nav (docs_hooks.py appends pages mkdocs.yml does not list)."""
from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

from problems import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs_hooks.py")
docs_hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_hooks)
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: pathlib.Path) -> list:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_code_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no python code block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_SCENARIOS", dict(registry._SCENARIOS))   # a tutorial may register
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    namespace = {"__name__": f"tutorial_{page.stem}"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{page.name} block {index + 1}", "exec"), namespace)


def test_the_tutorials_exist():
    assert {path.stem for path in TUTORIALS} >= {"first_scenario", "validate_optimizer"}


def test_every_docs_page_is_in_the_nav(tmp_path):
    import yaml
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    missing = docs_hooks.unlisted_pages(ROOT / "docs", config["nav"])
    nav = docs_hooks.add_unlisted({"docs_dir": str(ROOT / "docs"), "nav": config["nav"]})["nav"]
    assert docs_hooks.unlisted_pages(ROOT / "docs", nav) == []
    assert all(page in docs_hooks.listed(nav) for page in missing)
    # a page added without touching mkdocs.yml ends up under "Notes"
    (tmp_path / "a.md").write_text("# A page\n", encoding="utf-8")
    (tmp_path / "new.md").write_text("# Something new\n", encoding="utf-8")
    nav = docs_hooks.add_unlisted({"docs_dir": str(tmp_path), "nav": [{"A": "a.md"}]})["nav"]
    assert nav == [{"A": "a.md"}, {docs_hooks.SECTION: [{"Something new": "new.md"}]}]
