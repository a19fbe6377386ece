"""lossnav sweep on Dask: a dask.distributed.LocalCluster of two worker processes, started and
closed by this module on the loopback interface (no outside service), gives the serial table;
a worker killed by its task is replaced and the task retried, then recorded as lost; the time
limit ends a task running in a worker thread."""
import faulthandler
import os

import pandas as pd
import pytest
import sweep_tasks

from lossnav import cli
from lossnav.sweep import DaskCluster, local_cluster, make_task

FAST = ["--horizon", "2", "--intervals", "10", "--degree", "3"]
TIMINGS = ["wall_time", "worker", "build_time", "solve_time"]
GUARD_SECONDS = 180     # a hung cluster ends the test run with tracebacks instead of hanging


@pytest.fixture(scope="module")
def cluster():
    faulthandler.dump_traceback_later(GUARD_SECONDS, exit=True)
    try:
        with local_cluster(2, retries=1, preload=["lossnav.cli"]) as started:
            yield started
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_the_grid_on_a_local_cluster_equals_the_serial_table(cluster, tmp_path):
    grid = ["--grid", "gamma=0,1", "--grid", "eta=1,2"]
    assert cli.main(["sweep", "solve", "quadratic", *FAST, *grid, "--out", str(tmp_path / "serial")]) == 0
    assert cli.main(["sweep", "solve", "quadratic", *FAST, *grid, "--out", str(tmp_path / "dask"),
                     "--scheduler", cluster.scheduler_address]) == 0
    serial, dask = (pd.read_parquet(tmp_path / name / "results.parquet") for name in ("serial", "dask"))
    assert len(serial) == 4 and (serial["status"] == "ok").all()
    pd.testing.assert_frame_equal(serial.drop(columns=TIMINGS), dask.drop(columns=TIMINGS))
    assert set(dask["worker"]) != set(serial["worker"])     # it ran on the cluster's processes


def test_a_killed_dask_worker_is_retried_then_lost_and_the_time_limit_holds(cluster, tmp_path):
    marker = str(tmp_path / "died")
    tasks = [make_task(0, marker, "die once"), make_task(1, 3, 3), make_task(2, None, "die always")]
    with DaskCluster(cluster) as backend:   # the cluster object: its own client, closed after
        outcomes = {o.index: o for o in backend.run(sweep_tasks.dispatch, tasks)}
        # the time limit also holds in a Dask worker, where tasks run in a thread, not the main one
        slow = [make_task(0, 0.0, "quick"), make_task(1, 30.0, "slow")]
        timed = {o.index: o.status for o in backend.run(sweep_tasks.sleep, slow, seconds=0.5)}
    assert timed == {0: "ok", 1: "timeout"}
    assert os.path.exists(marker)
    assert outcomes[0].status == "ok" and outcomes[0].value == {"survived": True}
    assert outcomes[1].status == "ok" and outcomes[1].value == {"y": 9}
    assert outcomes[2].status == "lost" and outcomes[2].error == "its worker died 2 times running it"
