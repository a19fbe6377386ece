"""The house rules (docs/architecture.md), read from the source with ``ast``:

* imports run one way: lossnav → problems → {learning_rules, ocp}; learning_rules → ocp;
  ``ocp`` imports none of problems, learning_rules, lossnav, nor torch; ``learning_rules``
  imports neither problems nor lossnav; ``problems`` does not import lossnav;
* no import cycle between modules anywhere (function-level imports count too);
* the distribution installs exactly four import roots.

Each rule is checked on the real tree and, so that the check itself cannot pass vacuously,
on a planted violation.
"""
from __future__ import annotations

import ast
import pathlib
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ocp", "problems", "learning_rules", "lossnav")
FORBIDDEN = {
    "ocp": {"problems", "learning_rules", "lossnav", "torch"},
    "learning_rules": {"problems", "lossnav"},
    "problems": {"lossnav"},
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> set:
    """Every module ``source`` imports (absolute names; relative imports resolved), at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            if prefix:
                found.add(prefix)
            # ``from pkg import sub`` may import the submodule pkg.sub
            found.update(f"{prefix}.{alias.name}" if prefix else alias.name for alias in node.names)
    return found


def source_tree(root=ROOT) -> dict:
    """module name → (source, is_package) for every module of the four packages."""
    tree = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree[module_name(path)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return tree


def graph(tree: dict) -> dict:
    """module → the project modules it imports (names that are not modules are dropped)."""
    edges = {}
    for module, (source, is_package) in tree.items():
        edges[module] = {name for name in imports_of(source, module, is_package) if name in tree} - {module}
    return edges


def layer_violations(tree: dict) -> list:
    out = []
    for module, (source, is_package) in tree.items():
        banned = FORBIDDEN.get(module.split(".")[0], set())
        for name in sorted(imports_of(source, module, is_package)):
            if name.split(".")[0] in banned:
                out.append(f"{module} imports {name}")
    return out


def cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan), plus a module that
    imports its own package's __init__ from inside it is not counted (that is how packages work)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def without_package_inits(edges: dict) -> dict:
    """A package's __init__ re-exports its submodules; a submodule importing a sibling through
    the package (``from . import x``) names the package too. Keep only module → module edges
    that are not a submodule → its own enclosing package."""
    return {module: {other for other in targets if not module.startswith(other + ".")}
            for module, targets in edges.items()}


def test_imports_run_one_way():
    assert layer_violations(source_tree()) == []


def test_no_import_cycle_between_modules():
    assert cycles(without_package_inits(graph(source_tree()))) == []


def test_the_checks_fail_on_planted_violations():
    tree = source_tree()
    planted = dict(tree)
    planted["ocp.solver"] = (tree["ocp.solver"][0] + "\nimport torch\n", False)
    planted["learning_rules.kernels"] = (tree["learning_rules.kernels"][0] + "\nfrom problems import get\n",
                                         False)
    planted["problems.quadratic"] = (tree["problems.quadratic"][0]
                                     + "\n\ndef f():\n    from lossnav import cli\n", False)
    violations = layer_violations(planted)
    assert "ocp.solver imports torch" in violations
    assert "learning_rules.kernels imports problems" in violations
    assert "problems.quadratic imports lossnav" in violations
    # a cycle: the registry imports the cases module that imports the registry
    planted = dict(tree)
    planted["ocp.errors"] = (tree["ocp.errors"][0] + "\nfrom .solver import solve\n", False)
    assert any("ocp.errors" in component for component in cycles(without_package_inits(graph(planted))))


def test_relative_imports_resolve():
    found = imports_of("from . import ops\nfrom .scenario import Scenario\nfrom .. import ocp\n",
                       "problems.quadratic", False)
    assert {"problems", "problems.ops", "problems.scenario", "ocp"} <= found


def test_the_distribution_installs_four_import_roots():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["setuptools"]["packages"]
    assert sorted({name.split(".")[0] for name in packages}) == sorted(PACKAGES)
    assert config["project"]["scripts"]["lossnav"] == "lossnav.cli:main"
    # every package directory is listed (a subpackage left out would be missing when installed)
    on_disk = {module_name(path.parent)
               for package in PACKAGES for path in (ROOT / package).rglob("__init__.py")}
    assert on_disk == set(packages)


def test_lossnav_runs_from_a_directory_with_its_own_training_package(tmp_path):
    """A user's folder ``training/`` (or ``problems/`` ...) in the working directory does not
    shadow the application: ``lossnav train`` reaches its own registry (it refused the dataset
    name by name, instead of ``AttributeError: module 'training' has no attribute 'DATASETS'``)."""
    import os
    import subprocess
    import sys

    for name in ("training", "validation", "cli"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-m", "lossnav", "train", "--data", "no-such-data",
                           "--model", "mlp", "--rule", "sgd", "--epochs", "1", "--seed", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "unknown dataset 'no-such-data'; valid: digits" in done.stderr
    assert "Traceback" not in done.stderr


# -- Python 3.10 (requires-python in pyproject.toml and the README) -------------------------
NEW_IN_311 = {"tomllib"}         # standard-library modules that Python 3.10 lacks


def _guarded_by_version(tree: ast.AST) -> set:
    """ids of the Import nodes inside an ``if sys.version_info >= (3, 11):`` block."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            guarded.update(id(child) for child in ast.walk(node)
                           if isinstance(child, (ast.Import, ast.ImportFrom)))
    return guarded


def stdlib_311_violations(sources: dict) -> list:
    out = []
    for name, source in sources.items():
        tree = ast.parse(source)
        guarded = _guarded_by_version(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(n.split(".")[0] in NEW_IN_311 for n in names) and id(node) not in guarded:
                out.append(f"{name}: {', '.join(names)}")
    return out


def test_python_310_needs_no_module_new_in_311():
    """Every tomllib import sits behind a version test with the tomli fallback (a dependency on
    Python < 3.11 in pyproject.toml); a planted bare import is found."""
    files = [path for root in (*PACKAGES, "tests") for path in sorted((ROOT / root).rglob("*.py"))]
    sources = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}
    assert stdlib_311_violations(sources) == []
    assert stdlib_311_violations({"planted.py": "import tomllib\n"}) == ["planted.py: tomllib"]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["project"]["requires-python"] == ">=3.10"
    assert "tomli; python_version < '3.11'" in config["project"]["dependencies"]


def test_the_sources_compile_under_python_310():
    """Syntax new in 3.11+ (``except*``, PEP 695 generics) would break the promise; checked with a
    Python 3.10 interpreter where the machine has one (pyenv's or on PATH), skipped otherwise."""
    import glob
    import shutil
    import subprocess

    candidates = [shutil.which("python3.10"), *sorted(glob.glob("/root/.pyenv/versions/3.10*/bin/python"))]
    interpreter = next((c for c in candidates if c and subprocess.run([c, "--version"], capture_output=True)
                        .returncode == 0), None)
    if interpreter is None:
        pytest.skip("no Python 3.10 interpreter on this machine")
    roots = [str(ROOT / root) for root in (*PACKAGES, "tests", "benchmarks", "examples")]
    done = subprocess.run([interpreter, "-c", "import compileall, sys; sys.exit(not all("
                           "compileall.compile_dir(d, quiet=1, legacy=False, optimize=0, workers=1) "
                           "for d in sys.argv[1:]))", *roots], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# -- the engine's layers call down: no module of ocp re-enters the public solve -------------------
def _origin(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` names, relative levels resolved in ``package``."""
    if not node.level:
        return node.module
    parts = package.split(".")
    return ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))


def public_solve_calls(tree: dict) -> list:
    """Modules of ``ocp`` (but the façade ``ocp.solver`` and the package) that import the public
    ``solve`` (``from .solver import solve``, ``from ocp import solve``, ``from .. import solve``)
    or reach it as an attribute (``ocp.solve``, ``solver.solve``)."""
    out = []
    for module, (source, is_package) in tree.items():
        if not module.startswith("ocp") or module in ("ocp", "ocp.solver"):
            continue
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                origin, names = _origin(node, package), {alias.name for alias in node.names}
                public = ((origin == "ocp.solver" and "solve" in names)
                          or (origin == "ocp" and names & {"solve", "solver"}))
                if public:
                    out.append(f"{module} imports {origin}.{'solve' if 'solve' in names else 'solver'}")
            elif (isinstance(node, ast.Attribute) and node.attr == "solve"
                  and isinstance(node.value, ast.Name) and node.value.id in ("ocp", "solver")):
                out.append(f"{module} calls {node.value.id}.solve")
    return out


def test_no_module_of_the_engine_calls_the_public_solve():
    """The pipeline's layers (long horizon, mesh refinement, the infinite strategies) and the
    callers inside ocp (receding windows, multistart, verification) call the private core
    ``ocp.horizons.pipeline``, never ``ocp.solve``; planted calls of every form are found."""
    tree = source_tree()
    assert public_solve_calls(tree) == []
    planted = dict(tree)
    planted["ocp.control.multistart"] = (tree["ocp.control.multistart"][0]
                                         + "\nfrom ..solver import solve\n", False)
    planted["ocp.horizons.infinite"] = (tree["ocp.horizons.infinite"][0] + "\nimport ocp\n\ndef f():\n"
                                        "    return ocp.solve\n", False)
    planted["ocp.results.verification"] = (tree["ocp.results.verification"][0] + "\nfrom .. import solver\n"
                                           "\ndef g():\n    return solver.solve\n", False)
    found = public_solve_calls(planted)
    assert "ocp.control.multistart imports ocp.solver.solve" in found
    assert "ocp.horizons.infinite calls ocp.solve" in found
    assert "ocp.results.verification imports ocp.solver" in found
    assert "ocp.results.verification calls solver.solve" in found
