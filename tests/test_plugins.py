"""Plug-ins from outside the repository: a package announcing a scenario (entry-point group
``lossnav.scenarios``) and a training rule (``lossnav.rules``) appears in ``lossnav problems``,
``lossnav train --help`` and validates, with no edit here; broken, clashing and wrong-kind
plug-ins are one warning line each and the built-ins keep working; ``--plugin`` loads a
script; ``problems.register`` refuses what it cannot register.

The package is "installed" the way pip installs it: a ``*.dist-info`` directory with
``entry_points.txt`` beside the package on ``sys.path`` (offline, no pip, nothing written
into the project's environment).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import problems
from lossnav import cli, plugins
from lossnav.training import rules as training_rules
from lossnav.validation import cases
from problems import registry

PACKAGE = "lossnav_demo_plugin"

SOURCE = '''
"""A user's package: a 1-D quadratic whose minimum is not zero, and a heavy-ball rule."""
import numpy as np
import torch

import ocp
from problems import Scenario, ops


def offset_loss(theta, h, floor):
    return 0.5 * h * ops.dot(theta, theta) + floor


class OffsetQuadratic(Scenario):
    """L = h θ²/2 + L*, L* ≠ 0: γ = 0 is well posed only because loss_minimum is declared."""
    name = "demo_offset"
    reference = "a plug-in test scenario"
    defaults = {"h": 2.0, "floor": 0.7, "gamma": 1.0, "eta": 1.0, "k": 1.0}
    ranges = {"h": "> 0", "floor": "real"}

    @property
    def loss_minimum(self):
        return self.params["floor"]

    def build(self, params):
        return ocp.DiscountedOCP(dim=1, loss=offset_loss, gamma=params["gamma"], eta=params["eta"],
                                 k=params["k"], constants={"h": params["h"], "floor": params["floor"]},
                                 name=self.name)

    def default_theta0(self):
        return np.array([1.0])

    def fixed_point(self):
        return np.array([0.0])

    def analytic(self, t, theta0=None):
        p = self.params
        theta0 = self.theta0 if theta0 is None else theta0
        rate = p["gamma"] / 2 - np.sqrt(p["gamma"] ** 2 / 4 + p["eta"] * p["k"] * p["h"])
        return np.exp(rate * np.atleast_1d(t))[:, None] * theta0 if np.ndim(t) else np.exp(rate * t) * theta0


class Clash(OffsetQuadratic):
    name = "quadratic"             # a built-in's name


def heavy_ball(params, lr=0.05):
    """Heavy ball, momentum 0.9 (a plug-in rule)."""
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def no_default(params, lr):
    return torch.optim.SGD(params, lr=lr)
'''

ENTRY_POINTS = f"""
[lossnav.scenarios]
demo_offset = {PACKAGE}:OffsetQuadratic
broken = {PACKAGE}.missing_module:Thing
not_a_scenario = {PACKAGE}:heavy_ball
clash = {PACKAGE}:Clash

[lossnav.rules]
heavy_ball = {PACKAGE}:heavy_ball
sgd = {PACKAGE}:heavy_ball
no_default = {PACKAGE}:no_default
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A directory holding the installed package: the module and its dist-info."""
    root = tmp_path_factory.mktemp("site")
    (root / PACKAGE).mkdir()
    (root / PACKAGE / "__init__.py").write_text(SOURCE, encoding="utf-8")
    info = root / f"{PACKAGE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    return root


@contextlib.contextmanager
def restored_rules():
    """The rule registry as it was, afterwards (the same dict: lossnav.training.RULES is it)."""
    saved = dict(training_rules.RULES)
    try:
        yield
    finally:
        training_rules.RULES.clear()
        training_rules.RULES.update(saved)


@pytest.fixture
def installed(site, monkeypatch):
    """The package on sys.path and fresh registries (restored afterwards)."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_SCENARIOS", dict(registry._SCENARIOS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(registry, "_discovered", False)
    with restored_rules(), pytest.warns(problems.PluginWarning):   # sgd (a built-in's name), no_default
        training_rules._discover_rules()
        yield site


def test_an_installed_package_appears_in_every_command(site):
    """End to end in a fresh interpreter: the console's view of an installed plug-in."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "lossnav", "train", "--help"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    help_text = " ".join(out.stdout.split())
    assert "heavy_ball" in help_text and "adam_reset" in help_text and "sgd" in help_text
    warnings = [line for line in out.stderr.splitlines() if line.strip()]
    # one line per bad plug-in, naming it and why; nothing else on stderr
    assert len(warnings) == 5, out.stderr
    assert all(line.startswith("lossnav: warning: skipped plug-in") for line in warnings)
    assert any("broken" in line and "import failed" in line for line in warnings)
    assert any("not_a_scenario" in line and "not a problems.Scenario subclass" in line for line in warnings)
    assert any("clash" in line and "'quadratic'" in line and "taken" in line for line in warnings)
    assert any("sgd" in line and "lossnav.rules" in line and "taken" in line for line in warnings)
    assert any("no_default" in line and "positive numeric default" in line for line in warnings)


def test_listed_by_problems_with_the_builtins_intact(installed, capsys):
    assert cli.main(["problems", "--json"]) == 0
    out, err = capsys.readouterr()
    catalogue = {entry["name"]: entry for entry in json.loads(out)}
    assert len(err.splitlines()) == 3
    assert all(line.startswith("lossnav: warning: ") for line in err.splitlines())
    assert "demo_offset" in catalogue
    assert catalogue["demo_offset"]["origin"].startswith("entry point lossnav.scenarios")
    assert catalogue["quadratic"]["origin"] == "built-in"
    assert problems.get("quadratic", H=[2.0]).dim == 1
    assert {"broken", "not_a_scenario", "clash"}.isdisjoint(catalogue)


def test_validates_at_gamma_zero_with_a_declared_loss_minimum(installed, capsys):
    code = cli.main(["validate", "demo_offset", "--gammas", "0", "--draws", "0", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0, rows
    assert [row["params"]["gamma"] for row in rows] == [0.0]
    assert all(row["passed"] and row["error"] < 1e-6 for row in rows)


def test_gamma_zero_without_the_loss_minimum_says_what_to_declare(installed):
    with pytest.warns(problems.PluginWarning):
        base = registry.registered()["demo_offset"]
    undeclared = type("Undeclared", (base,), {"name": "demo_undeclared", "loss_minimum": 0.0})
    problems.register(undeclared)
    result = cases.check(cases.Case("demo_undeclared", {"gamma": 0.0}, np.array([1.0]), "γ=0"), rules=False)
    assert not result.passed and "loss_minimum" in result.message


def test_the_plugin_rule_is_a_training_rule(installed, capsys):
    assert training_rules.RULES["sgd"].description == "torch.optim.SGD"      # the built-in kept
    assert "no_default" not in training_rules.RULES
    code = cli.main(["train", "--data", "digits", "--model", "mlp", "--rule", "heavy_ball", "--epochs", "1",
                     "--seed", "0", "--batch", "128", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["rule"] == "heavy_ball"
    rule = training_rules.RULES["heavy_ball"]
    assert rule.default_lr == 0.05 and "Heavy ball" in rule.description
    import torch
    optimizer = training_rules.make_optimizer("heavy_ball", [torch.zeros(2, requires_grad=True)])
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9


SCRIPT = textwrap.dedent('''
    import numpy as np
    import ocp
    from problems import Scenario


    class ScriptWell(Scenario):
        name = "script_well"
        defaults = {"gamma": 1.0}

        def build(self, params):
            return ocp.DiscountedOCP(dim=1, loss=lambda theta: (theta[0] ** 2 - 1) ** 2,
                                     gamma=params["gamma"])

        def default_theta0(self):
            return np.array([0.5])


    class NotAScenario:
        pass


    class Unbuildable(Scenario):
        name = "unbuildable"
        defaults = {"gamma": 1.0}

        def build(self, params):
            raise RuntimeError("the user's build is broken")


    def descent(params, lr=0.1):
        import torch
        return torch.optim.SGD(params, lr=lr)
''')


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_SCENARIOS", dict(registry._SCENARIOS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    monkeypatch.setattr(plugins, "_LOADED", [])
    path = tmp_path / "my_scenarios.py"
    path.write_text(SCRIPT, encoding="utf-8")
    with restored_rules():
        yield path


def test_plugin_option_loads_a_script(script, capsys):
    assert cli.main(["problems", "--plugin", str(script)]) == 0
    out, err = capsys.readouterr()
    assert "script_well" in out and "quadratic" in out
    assert registry.origin("script_well").startswith("--plugin")
    # a plug-in that cannot be built at its defaults: one warning line, the others still listed
    assert "unbuildable" not in out and err.count("\n") == 1 and "the user's build is broken" in err
    assert cli.main(["problems", f"--plugin={script}:descent"]) == 0
    assert training_rules.RULES["descent"].default_lr == 0.1


@pytest.mark.parametrize("suffix, code, words", [
    (":NotAScenario", 1, "neither a problems.Scenario subclass nor an optimizer factory"),
    (":missing", 1, "has no attribute 'missing'"),
])
def test_plugin_option_faults_are_one_line(script, capsys, suffix, code, words):
    assert cli.main(["problems", "--plugin", f"{script}{suffix}"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and err.startswith("lossnav: error: --plugin")


def test_plugin_option_missing_file_or_module_is_a_usage_error(capsys):
    assert cli.main(["problems", "--plugin", "no/such/file.py"]) == 2
    assert cli.main(["solve", "quadratic", "--plugin", "no_such_module_xyz"]) == 2
    assert cli.main(["problems", "--plugin"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("lossnav: error: --plugin") for line in err)


def test_every_command_takes_plugin(capsys):
    parser = cli.build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert {"problems", "solve", "validate", "train"} <= set(subcommands)
    for name, subparser in subcommands.items():
        assert any("--plugin" in action.option_strings for action in subparser._actions), name


def test_register_refuses_what_it_cannot_register(monkeypatch):
    monkeypatch.setattr(registry, "_SCENARIOS", dict(registry._SCENARIOS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))
    quadratic = registry.registered()["quadratic"]
    with pytest.raises(problems.RegistrationError, match="not a problems.Scenario subclass"):
        problems.register(dict)
    with pytest.raises(problems.RegistrationError, match="needs a class attribute name"):
        problems.register(type("Nameless", (problems.Scenario,), {}))
    with pytest.raises(problems.RegistrationError, match="taken by"):
        problems.register(type("Impostor", (quadratic,), {}))
    assert problems.register(quadratic) is quadratic          # the same class again: a no-op
    decorated = problems.register(type("Fresh", (quadratic,), {"name": "fresh_quadratic"}))
    assert problems.get("fresh_quadratic").__class__ is decorated


def test_preparse_finds_both_spellings():
    assert plugins.preparse(["solve", "x", "--plugin", "a.py", "--plugin=b:C"]) == ["a.py", "b:C"]
    assert plugins.preparse(["solve", "--", "--plugin", "a.py"]) == []


def test_cases_carry_the_plugins_to_worker_processes(script, monkeypatch):
    """validate --workers solves cases in other processes: a case names the --plugin specs, and
    a process that has not loaded them (simulated: a fresh registry) loads them itself."""
    assert cli.main(["problems", "--plugin", str(script)]) == 0
    case = cases.cases("script_well", draws=0)[0]
    assert case.plugins == (str(script.resolve()),)
    others = {name: cls for name, cls in registry._SCENARIOS.items() if name != "script_well"}
    monkeypatch.setattr(registry, "_SCENARIOS", others)
    monkeypatch.setattr(plugins, "_LOADED", [])
    monkeypatch.delitem(sys.modules, "lossnav_plugin_my_scenarios")
    assert "script_well" not in problems.names()
    assert case.scenario().name == "script_well"
