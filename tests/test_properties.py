"""Property-based robustness (Hypothesis, derandomized): every CLI command's parser and the public
constructors, driven with generated values — NaN, ±inf, huge and tiny numbers, wrong lengths and
types, odd paths — end in a named error or a correct result: never a traceback, never a hang
(each example runs under a SIGALRM budget), never a file left half-written.

The command line is called in-process (``lossnav.cli.main``); the heavy work behind a command
(collocation, MPC, rule runs, training, validation cases, the Langevin simulation) is replaced by
a stand-in that returns a small valid result at once, so what is tested is everything before and
after it: parsing, the checks of every value, the one-line errors, and the outputs written.
"""
import contextlib
import glob
import inspect
import json
import math
import os
import re
import signal
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import learning_rules
import ocp
import problems
from lossnav import cli

BUDGET_S = 30          # per example: a hang fails the test instead of the suite
PROPERTY = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

NASTY_TEXT = ["nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e400", "1e-320", "0", "-0", "-1", "1", "2.5",
              "", " ", "abc", "1,2", "1,nan", "1,,2", "[[1,2],[3,4]]", "[1, 2, 3]", "100000000000000000000",
              "0x10", "1_000", "true", "null", "{}", "-", "--", "é", "1e-5"]
numbers_text = st.one_of(st.sampled_from(NASTY_TEXT),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.integers(-10 ** 20, 10 ** 20).map(str))


@contextlib.contextmanager
def budget(seconds=BUDGET_S):
    def expired(signum, frame):
        raise TimeoutError(f"example ran past its {seconds} s budget (a hang)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Reached(Exception):
    """Raised by a stand-in for heavy work: every input check before it passed."""


def small_trajectory(problem=None, theta0=None, **_):
    dim = len(theta0) if theta0 is not None else 2
    t = np.linspace(0.0, 1.0, 3)
    theta = np.outer(np.exp(-t), np.ones(dim))
    return ocp.Trajectory(t=t, theta=theta, velocity=-theta, kinetic=t, potential=t, costate=theta,
                          objective=1.0, elements=np.array([[0, 1, 0.0, 0.0], [1, 2, 0.0, 0.0]]),
                          stats={"success": True})


@pytest.fixture
def light(monkeypatch):
    install_stand_ins(monkeypatch)


def install_stand_ins(monkeypatch):
    """Stand-ins for the heavy work of every command (see the module docstring)."""
    from lossnav import training
    from lossnav.cli import langevin
    from lossnav.figures import paper
    from lossnav.validation import cases, optimizer_studies, rule_runner
    monkeypatch.setattr(ocp, "solve", lambda problem, theta0, **options: small_trajectory(problem, theta0))
    monkeypatch.setattr(ocp.RecedingHorizonController, "run",
                        lambda self, theta0, steps, t0=0.0: small_trajectory(None, theta0))

    def run_rule(name, scenario, dt, steps, theta0=None, **options):   # three iterates standing still
        return dt * np.arange(3), np.tile(theta0, (3, 1))
    monkeypatch.setattr(rule_runner, "run_rule", run_rule)
    epoch = {"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": 50.0, "wall_time": 0.1}
    history = {"epochs": [epoch], "steps": 1, "fallbacks": 0, "skipped_steps": 0}
    monkeypatch.setattr(training, "train", lambda *a, **k: history)
    monkeypatch.setattr(cases, "validate", lambda *a, **k: [])
    real_cases = cases.cases

    def few_cases(name, draws=2, seed=0, gammas=None, settings=None):   # a million draws: a long job
        if draws > 50:
            raise Reached
        return real_cases(name, draws, seed, gammas, settings)
    monkeypatch.setattr(cases, "cases", few_cases)
    monkeypatch.setattr(optimizer_studies, "run", lambda *a, **k: [])
    monkeypatch.setattr(paper, "FIGURES", {})

    def reached(*args, **kwargs):
        raise Reached
    monkeypatch.setattr(langevin, "simulate", reached)


def odd_paths(folder):
    return st.sampled_from([os.path.join(folder, name) for name in (
        "out.npz", "out.png", "missing/x.npz", "x.txt", "noext", "a b.npz", "é.npz", "x.npz/", "dir", "",
        "file/inside.npz", "nul\x00.npz")] + [folder, "/dev/null/x.npz"])


def option(flag, *valid):
    """(flag, value): a valid value three times in four, a generated nasty one otherwise; a
    flag without a value when none is given."""
    if not valid:
        return st.tuples(st.just(flag), st.none())
    return st.tuples(st.just(flag), mostly(*valid))


def mostly(*valid):
    """A valid value three times in four, a generated one otherwise."""
    good = st.sampled_from(list(valid))
    return st.one_of(good, good, good, numbers_text)


def argv_for(command, folder):
    """Strategy of argv lists for ``command``: a subset of its options, mostly valid values mixed
    with generated ones (so that most examples get past the parser to the checks behind it)."""
    names = problems.names()
    scenario = st.one_of(st.sampled_from(names), st.sampled_from(names),
                         st.sampled_from(["nope", "", "QUADRATIC"]))
    setting = st.tuples(st.sampled_from(["H", "gamma", "mu", "eta", "k", "nope", "theta0"]),
                        st.one_of(st.sampled_from(["0.5", "[[2,0],[0,1]]", "[1,-1]"]), numbers_text)) \
        .map(lambda kv: f"{kv[0]}={kv[1]}")
    methods = st.sampled_from(["collocation", "analytic", "mpc", "rule:gradient_descent", "rule:ballistic",
                               "rule:nope", "rule:", "newton"])
    options = {
        "problems": [option("--json")],
        "solve": [st.tuples(st.just("--method"), methods),
                  st.tuples(st.just("--set"), setting), option("--theta0", "0.5,2", "1", "1,1,1"),
                  option("--horizon", "inf", "2"), option("--terminal", "0,0"), option("--intervals", "10"),
                  option("--degree", "3"),
                  st.tuples(st.just("--scheme"), st.sampled_from(["legendre", "radau", "x"])),
                  option("--dt", "0.1"), option("--steps", "5"), option("--t0", "0", "1"),
                  option("--plan-horizon", "inf", "1"), st.tuples(st.just("--out"), odd_paths(folder)),
                  st.tuples(st.just("--plot"), odd_paths(folder)), option("--json")],
        "validate": [option("--draws", "0", "1"), option("--seed", "0"), option("--gammas", "0,1", "2"),
                     option("--json"), st.tuples(st.just("--report"), odd_paths(folder)), option("--all"),
                     option("--dt", "0.1,0.05"), option("--workers", "1")],
        "langevin": [option("--dim", "2", "4"), option("--samples", "100"), option("--noise", "0.5"),
                     option("--lr", "0.03"), option("--momentum", "0.9"),
                     option("--weight-decay", "0", "0.1"), option("--batch", "4"), option("--steps", "10"),
                     option("--seed", "0"), option("--chains", "2"),
                     option("--spectrum", "1,0.5"), st.tuples(st.just("--plot"), odd_paths(folder)),
                     option("--json")],
        "train": [option("--batch", "8", "32"), option("--lr", "0.01"),
                  st.tuples(st.just("--out"), odd_paths(folder)),
                  st.tuples(st.just("--checkpoint"), odd_paths(folder)),
                  st.tuples(st.just("--resume"), odd_paths(folder)), option("--json"),
                  st.tuples(st.just("--tasks"), st.sampled_from(["split", "permuted", "nope"]))],
    }[command]
    positional = {"solve": st.lists(scenario, min_size=1, max_size=1),
                  "validate": st.lists(scenario, max_size=2)}
    train_required = st.tuples(st.sampled_from(["digits", "digits", "cifar"]),
                               st.sampled_from(["mlp", "mlp", "resnet"]),
                               st.sampled_from(["sgd", "adam", "ballistic", "nope"]),
                               mostly("1"), mostly("0"))
    required = {"train": train_required.map(lambda r: ["--data", r[0], "--model", r[1], "--rule", r[2],
                                                       "--epochs", r[3], "--seed", r[4]])}

    def build(parts):
        head, chosen = parts
        argv = [command, *head]
        for flag, value in chosen:
            argv += [flag] if value is None else [flag, value]
        return argv
    head = positional.get(command, required.get(command, st.just([])))
    return st.tuples(head, st.lists(st.one_of(options), max_size=4)).map(build)


def check_outcome(code, err, folder):
    assert code in (0, 1, 2), code
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if re.match(r"lossnav( \w+)?: (error|interrupted)", line)]
    if code != 0:                                      # (validate --json prints its table on stderr)
        assert len(errors) == 1, err
    leftovers = [path for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                 + glob.glob(os.path.join(folder, "**", ".*"), recursive=True) if path.endswith(".tmp")]
    assert not leftovers, leftovers
    for path in glob.glob(os.path.join(folder, "**", "*.npz"), recursive=True):
        if os.path.isfile(path):
            ocp.Trajectory.load(path)                      # complete, checksum intact
    for path in glob.glob(os.path.join(folder, "**", "*.json"), recursive=True):
        json.load(open(path))


@pytest.mark.parametrize("command", ["problems", "solve", "validate", "langevin", "train"])
def test_every_command_answers_generated_input_with_a_result_or_one_line(command, light, capsys):
    folder = tempfile.mkdtemp(prefix="lossnav-properties-")
    os.mkdir(os.path.join(folder, "dir"))
    open(os.path.join(folder, "file"), "w").close()

    @PROPERTY
    @given(argv=argv_for(command, folder))
    def run(argv):
        with budget():
            try:
                code = cli.main(argv)
            except Reached:                                # accepted up to the heavy work
                code = None
        captured = capsys.readouterr()
        if code is not None:
            check_outcome(code, captured.err, folder)
    run()


# -- the public constructors ----------------------------------------------------------------------
nasty_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30),
    st.sampled_from([0, -1, 1e-320, 1e308, math.nan, math.inf, -math.inf, True, None, "1", "abc", [], [1.0],
                     [1.0, 2.0, 3.0], [[1.0, 0.0], [0.0, -1.0]], [math.nan, 1.0], {}, (1,), b"x"]),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4))


@PROPERTY
@given(intervals=nasty_values, degree=nasty_values,
       scheme=st.one_of(st.sampled_from(["legendre", "radau", "x"]), nasty_values))
def test_mesh_is_valid_or_an_engine_error(intervals, degree, scheme):
    try:
        mesh = ocp.Mesh(intervals, degree, scheme)
    except ocp.OCPError:
        return
    assert mesh.intervals >= 1 and 1 <= mesh.degree <= 12 and mesh.scheme in ("legendre", "radau")


def _sum_of_squares(theta):
    return 0.5 * sum(theta[i] ** 2 for i in range(theta.shape[0]))


@PROPERTY
@given(dim=nasty_values, gamma=nasty_values, eta=nasty_values, k=nasty_values,
       metric=st.one_of(st.none(), nasty_values))
def test_discounted_ocp_is_valid_or_an_engine_error(dim, gamma, eta, k, metric):
    with budget():
        try:
            problem = ocp.DiscountedOCP(dim, _sum_of_squares, gamma=gamma, eta=eta, k=k, metric=metric)
        except ocp.OCPError:
            return
    assert problem.dim >= 1 and problem.eta > 0 and problem.gamma >= 0 and problem.k >= 0
    assert all(math.isfinite(value) for value in (problem.gamma, problem.eta, problem.k))


RULES = [getattr(learning_rules, name) for name in learning_rules.__all__]


def _numeric_options(cls):
    return [name for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if isinstance(parameter.default, (int, float)) and not isinstance(parameter.default, bool)]


@PROPERTY
@given(cls=st.sampled_from(RULES), data=st.data())
def test_every_optimizer_is_valid_or_a_value_error(cls, data):
    """Each numeric hyperparameter of each rule (read from its signature) with a generated value:
    a ValueError naming it, or an optimizer whose groups hold finite numbers; a bad lr too."""
    name = data.draw(st.sampled_from(_numeric_options(cls)), label="hyperparameter")
    value = data.draw(nasty_values, label="value")
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    with budget():
        try:
            optimizer = cls([param], **{name: value})
        except (ValueError, TypeError) as exc:
            assert name in str(exc) or "lr" in str(exc) or "damping" in str(exc), exc
            return
    for group in optimizer.param_groups:
        for key, setting in group.items():
            if isinstance(setting, float):
                assert math.isfinite(setting), (key, setting)
    with budget():                                   # the state round trip keeps it valid
        optimizer.load_state_dict(optimizer.state_dict())


SCENARIO_PARAMETERS = sorted({(name, key) for name in problems.names()
                              for key in problems.get(name).describe()["parameters"]})


@PROPERTY
@given(choice=st.sampled_from(SCENARIO_PARAMETERS + [("quadratic", "nope"), ("nope", "gamma")]),
       value=nasty_values)
def test_every_scenario_parameter_is_valid_or_a_problem_error(choice, value):
    name, key = choice
    with budget():
        try:
            scenario = problems.get(name, **{key: value})
        except ocp.ProblemError as exc:
            assert key in str(exc) or name in str(exc) or "parameter" in str(exc), exc
            return
    theta0 = np.asarray(scenario.theta0, float)
    assert np.all(np.isfinite(theta0)) and theta0.shape[-1] >= 1
