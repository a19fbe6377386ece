"""lossnav sweep: grids, the local pool, faults (failing task, time limit, killed worker), resume.

The Dask backend is in tests/test_sweep_dask.py. Tasks are tiny (solve quadratic on a
10-element mesh over a horizon of 2; the functions of tests/sweep_tasks.py).
"""
import json
import os

import pandas as pd
import pytest
import sweep_tasks

from lossnav import cli
from lossnav.sweep import GridError, LocalPool, Serial, make_task, points
from lossnav.sweep import grid as grids
from lossnav.sweep import table as tables

FAST = ["--horizon", "2", "--intervals", "10", "--degree", "3"]
TIMINGS = ("wall_time", "worker", "build_time", "solve_time")


def sweep(*args):
    try:
        return cli.main(["sweep", *args])
    except SystemExit as exc:   # main returns codes; never let a test hang on one
        return exc.code


def table(directory):
    return pd.read_parquet(os.path.join(directory, "results.parquet"))


def tasks_of(function_inputs):
    return [make_task(i, x, {"x": x}, {"x": x}) for i, x in enumerate(function_inputs)]


# --- the grid -------------------------------------------------------------------------------

def test_grid_specs_lists_ranges_and_brackets():
    assert grids.parse_option("seed=0:5") == ("seed", ["0", "1", "2", "3", "4"])
    assert grids.parse_option("dt=0.1:0.5:0.1")[1] == ["0.1", "0.2", "0.3", "0.4"]
    assert grids.parse_option("H=[[2,1],[1,3]],[[1,0],[0,1]]")[1] == ["[[2,1],[1,3]]", "[[1,0],[0,1]]"]
    grid = {"a": ["1", "2"], "b": ["x", "y", "z"]}
    assert points(grid) == [{"a": a, "b": b} for a in "12" for b in "xyz"]   # first key slowest
    sample = points(grid, samples=4, seed=3)
    assert len(sample) == 4 and len({tuple(p.values()) for p in sample}) == 4   # no repeats
    assert sample == points(grid, samples=4, seed=3)
    drawn = points({"lr": grids.parse_axis("lr", "loguniform(1e-3, 1e-1)")}, samples=20, seed=0)
    assert all(1e-3 <= float(p["lr"]) < 1e-1 for p in drawn)
    for bad in ("gamma", "gamma=", "gamma=1,,2", "seed=5:0", "x=0.1:1"):
        with pytest.raises(GridError):
            grids.parse_option(bad)
    with pytest.raises(GridError, match="needs --samples"):
        points({"lr": grids.parse_axis("lr", "uniform(0,1)")})


def test_grid_files_toml_and_yaml(tmp_path):
    (tmp_path / "g.toml").write_text('samples = 2\nseed = 1\n[grid]\ngamma = [0, 0.1, 1]\nseed = "0:3"\n')
    content = grids.read_file(str(tmp_path / "g.toml"))
    assert content["grid"] == {"gamma": ["0", "0.1", "1"], "seed": ["0", "1", "2"]}
    assert (content["samples"], content["seed"]) == (2, 1)
    (tmp_path / "g.yaml").write_text("grid:\n  gamma: [0, 1]\n  lr: 'uniform(0.1, 0.2)'\n")
    assert grids.read_file(str(tmp_path / "g.yaml"))["grid"]["gamma"] == ["0", "1"]
    (tmp_path / "bad.toml").write_text("[grid]\n")
    with pytest.raises(GridError, match="non-empty 'grid'"):
        grids.read_file(str(tmp_path / "bad.toml"))


# --- the command line -----------------------------------------------------------------------

def test_sweep_solve_grid_serial_and_local_pool_tables_are_equal(tmp_path, capsys):
    grid = ["--grid", "gamma=0,0.5", "--grid", "eta=1,2"]
    assert sweep("solve", "quadratic", *FAST, *grid, "--out", str(tmp_path / "serial"),
                 "--plot", "objective") == 0
    assert sweep("solve", "quadratic", *FAST, *grid, "--out", str(tmp_path / "pool"), "--workers", "2") == 0
    serial, pool = table(tmp_path / "serial"), table(tmp_path / "pool")
    assert len(serial) == 4 and (serial["status"] == "ok").all()
    assert list(serial[["gamma", "eta"]].itertuples(index=False, name=None)) == \
        [(g, e) for g in (0, 0.5) for e in (1, 2)]
    pd.testing.assert_frame_equal(serial.drop(columns=list(TIMINGS)), pool.drop(columns=list(TIMINGS)))
    assert pool["worker"].nunique() == 2            # two processes did the work
    # a row equals what the command prints, and its argv re-runs it alone
    row = serial.iloc[3]
    capsys.readouterr()
    argv = row["argv"].split()[1:]
    assert cli.main(argv) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["objective"] == row["objective"] and alone["params"]["eta"] == row["eta"] == 2
    assert (tmp_path / "serial" / "objective_vs_gamma.png").stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "serial" / "results.csv")[["gamma", "objective"]],
                                  serial[["gamma", "objective"]])


def test_a_failing_task_is_a_row_and_the_sweep_goes_on(tmp_path, capsys):
    code = sweep("solve", "quadratic", *FAST, "--grid", "gamma=1,-1,0.5", "--out", str(tmp_path))
    assert code == 1                              # not every task ok
    rows = table(tmp_path)
    assert rows["status"].tolist() == ["ok", "failed", "ok"]
    assert "gamma" in rows["error"][1] and rows["error"][1].startswith("exit 1")
    assert "1 failed" in capsys.readouterr().out


def test_resume_skips_finished_tasks_and_a_full_folder_is_refused(tmp_path, capsys):
    out = str(tmp_path)
    assert sweep("solve", "quadratic", *FAST, "--grid", "gamma=0,1", "--out", out) == 0
    first = table(out)
    assert sweep("solve", "quadratic", *FAST, "--grid", "gamma=0,1", "--out", out) == 2   # no --resume
    assert "--resume" in capsys.readouterr().err
    assert sweep("solve", "quadratic", *FAST, "--grid", "gamma=0,1,2", "--out", out, "--resume") == 0
    assert "resuming: 2 of 3 tasks finished already" in capsys.readouterr().err
    resumed = table(out)
    assert resumed["gamma"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(resumed.iloc[:2], first)    # reused as they were, wall times included
    assert len(os.listdir(tmp_path / "tasks")) == 3


@pytest.mark.parametrize("args, message", [
    (["solve", "quadratic", "--out", "X"], "at least one --grid"),
    (["solve", "quadratic", "--grid", "gamma=0,1"], "--out"),
    (["solve", "quadratic", "--grid", "nope=1", "--out", "X"], None),      # --set nope=1: the task fails
    (["problems", "--grid", "nope=1", "--out", "X"], "not an option of problems"),
    (["sweep", "--grid", "a=1", "--out", "X"], "unknown command"),
    (["solve", "quadratic", "--grid", "intervals=ten", "--out", "X"], "intervals"),
    (["solve", "quadratic", "--grid", "gamma=0", "--workers", "2", "--scheduler", "tcp://x:1", "--out", "X"],
     "not both"),
    (["train", "--grid", "lr=uniform(0,1)", "--out", "X"], "needs --samples"),
])
def test_malformed_sweeps_exit_2_with_one_line(tmp_path, capsys, args, message):
    args = [str(tmp_path / "out") if arg == "X" else arg for arg in args]
    code = sweep(*args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "sweep:" not in line]
    if message is None:
        assert code == 1
        return
    assert code == 2 and len(err) == 1 and message in err[0], err


# --- the engine: seeds, time limit, killed workers ------------------------------------------

def test_every_task_is_seeded_from_its_parameters():
    tasks = tasks_of([1, 2, 3, 1])
    serial = [o.value["draw"] for o in Serial().run(sweep_tasks.draw, tasks)]
    reversed_order = {o.index: o.value["draw"] for o in Serial().run(sweep_tasks.draw, tasks[::-1])}
    with LocalPool(2) as pool:
        parallel = {o.index: o.value["draw"] for o in pool.run(sweep_tasks.draw, tasks)}
    assert serial == [reversed_order[i] for i in range(4)] == [parallel[i] for i in range(4)]
    assert serial[0] == serial[3] and len(set(serial[:3])) == 3   # same parameters, same seed


def test_time_limit_and_a_failing_function_give_rows():
    tasks = tasks_of([0.0, 30.0])
    outcomes = sorted(Serial().run(sweep_tasks.sleep, tasks, seconds=0.3), key=lambda o: o.index)
    assert [o.status for o in outcomes] == ["ok", "timeout"]
    assert outcomes[1].wall_time < 5 and "time limit of 0.3 s" in outcomes[1].error
    failed = next(iter(Serial().run(sweep_tasks.fail, tasks_of([7]))))
    assert failed.status == "failed" and failed.error == "ValueError: bad input 7"


def test_a_killed_local_worker_is_retried_then_lost(tmp_path):
    marker = str(tmp_path / "died")
    tasks = [make_task(0, marker, "die once"), *(make_task(i, i, i) for i in (1, 2, 3))]
    with LocalPool(2, retries=1) as pool:
        runs = pool.run(sweep_tasks.dispatch, [*tasks, make_task(4, None, "die always")])
        outcomes = {o.index: o for o in runs}
    assert os.path.exists(marker)
    assert [outcomes[i].status for i in range(5)] == ["ok", "ok", "ok", "ok", "lost"]
    # retried after its death and then survived; it may be started once more when the pool
    # breaks under it again (the other task's death while it is queued: seen once in 941-test
    # runs), which charges a start but no death
    assert outcomes[0].value == {"survived": True} and outcomes[0].attempts >= 2
    assert all(outcomes[i].value == {"y": i * i} for i in (1, 2, 3))
    assert outcomes[4].error == "its worker died 2 times running it"   # one run + one retry


def test_rows_flatten_json_and_records():
    flat = tables.flatten({"a": 1, "b": {"c": [1, 2], "d": "x"}})
    assert flat == {"a": 1, "b.c": "[1, 2]", "b.d": "x"}
    cases = tables.flatten([{"passed": True, "error": 1e-9}, {"passed": False, "error": 3e-7}])
    assert cases == {"count": 2, "passed": 1, "failed": 1, "max_error": 3e-7}


def test_validate_on_a_local_pool_equals_the_serial_run():
    """The cases of ``validate --workers 2`` (rules off, to be quick):
    the same rows in the same order, the progress calls too; only 'seconds' differs."""
    from lossnav.validation import cases
    options = dict(draws=0, gammas=[1, 10], rules=False)
    seen = {"serial": [], "pool": []}
    serial = cases.validate(["quadratic"], progress=lambda r: seen["serial"].append(r.case.label), **options)
    with LocalPool(2) as pool:
        parallel = cases.validate(["quadratic"], backend=pool,
                                  progress=lambda r: seen["pool"].append(r.case.label), **options)

    def rows(results):
        return [{key: value for key, value in r.row().items() if key != "seconds"} for r in results]
    assert rows(serial) == rows(parallel) and len(serial) == 2 and all(r.passed for r in serial)
    assert seen["serial"] == seen["pool"] == [r.case.label for r in serial]


def test_any_registered_command_is_swept_and_the_time_limit_makes_a_row(tmp_path, monkeypatch):
    """A command added to the CLI's COMMANDS (as a plug-in command would be) is swept like the
    built-ins; --time-limit turns the slow task into a 'timeout' row."""
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, sweep_tasks.add_echo_parser))
    code = sweep("echo", "--grid", "value=1,2", "--grid", "sleep=0,30", "--time-limit", "0.5",
                 "--out", str(tmp_path))
    rows = table(tmp_path)
    assert code == 1
    assert rows["status"].tolist() == ["ok", "timeout", "ok", "timeout"]
    assert rows["twice"].tolist()[::2] == [2.0, 4.0] and rows["wall_time"][1] < 10
    assert rows["error"][1] == "exceeded the time limit of 0.5 s"


def test_summary_plot_numeric_and_categorical_parameters(tmp_path):
    from lossnav.sweep.plot import PlotError, summary_plot
    rows = pd.DataFrame({"rule": ["sgd", "sgd", "adam", "adam"], "seed": [0, 1, 0, 1],
                         "lr": [0.1, 0.1, 1.0, 1.0], "status": ["ok", "ok", "ok", "failed"],
                         "acc": [90.0, 91.0, 95.0, None]})
    rows.attrs["parameters"] = ["rule", "seed"]
    for against in ("rule", "lr"):
        path = summary_plot(rows, "acc", against, str(tmp_path / f"{against}.png"))
        assert os.path.getsize(path) > 0
    with pytest.raises(PlotError, match="no column 'nope'"):
        summary_plot(rows, "nope", "rule", str(tmp_path / "x.png"))


def test_validate_refuses_workers_with_a_scheduler(capsys):
    assert cli.main(["validate", "quadratic", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "not both" in err[0]
