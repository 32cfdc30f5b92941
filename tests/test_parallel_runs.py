"""skgradunc/experiments/parallel_runs.py: the protocol's runs as Dask tasks, on a
LocalCluster of two worker processes and on an existing cluster, give the serial tables;
the cache is shared and resumed; the settings and a missing dask are refused clearly."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import tables_without_clock
from skgradunc import cli
from skgradunc.experiments import ReproduceConfig, check_config, run_protocol
from skgradunc.experiments import parallel_runs
from skgradunc.experiments.parallel_runs import device_for_worker, resolve_threads


def tiny(out, **kwargs):
    # on the CPU, one torch thread per run: float32 training rounds differently with
    # another thread count, so the serial and Dask runs must use the same one
    return ReproduceConfig(**{"data": "digits", "runs": 2, "out": str(out), "epochs": 2,
                              "ood_size": 60, "device": "cpu", "threads": 1, **kwargs})


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run_protocol(tiny(out), log=lambda message: None)
    return out


def test_two_local_workers_write_the_serial_tables_and_share_the_cache(serial, tmp_path):
    messages = []
    run_protocol(tiny(tmp_path, workers=2), log=messages.append)
    assert tables_without_clock(tmp_path / "tables.json") == \
        tables_without_clock(serial / "tables.json")
    assert {m for m in messages if "finished" in m} == {"run 1 finished (1 of 2)",
                                                        "run 2 finished (2 of 2)"} or \
        {m for m in messages if "finished" in m} == {"run 2 finished (1 of 2)",
                                                     "run 1 finished (2 of 2)"}
    assert any(m.startswith("run 1: accuracy") for m in messages)   # the worker's own
    cached = sorted(tmp_path.glob("runs/run-*/*.npz"))
    assert len(cached) == 2
    written = {path: path.stat().st_mtime_ns for path in cached}
    # resumed serially from what the workers wrote: nothing computed again
    again = []
    run_protocol(tiny(tmp_path), log=again.append)
    assert {path: path.stat().st_mtime_ns for path in cached} == written
    assert not any("accuracy" in m for m in again)
    assert tables_without_clock(tmp_path / "tables.json") == \
        tables_without_clock(serial / "tables.json")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["threads"] == 1
    # each file a worker cached records the thread count config.json records (issue 25)
    for run, path in enumerate(cached):
        settings = json.loads(str(np.load(path)["settings"]))
        network = json.loads(torch.load(path.parent / "net.pt", weights_only=True)["settings"])
        for recorded in (settings, network):
            assert (recorded["threads"], recorded["run"], recorded["run_seed"]) == (
                config["threads"], run + 1, run)


def test_an_existing_cluster_at_its_address(serial, tmp_path, dask_client):
    # run 1 from the serial cache, run 2 computed on the cluster's worker
    shutil.copytree(serial / "runs" / "run-01", tmp_path / "runs" / "run-01")
    address = dask_client.scheduler.address
    run_protocol(tiny(tmp_path, scheduler=address), log=lambda message: None)
    assert (tmp_path / "runs" / "run-02" / "features.npz").is_file()
    assert tables_without_clock(tmp_path / "tables.json") == \
        tables_without_clock(serial / "tables.json")


def test_a_run_that_fails_on_a_worker_is_raised_as_it_is(serial, tmp_path):
    """A cached run made with other settings is refused on the worker; the error comes
    back with its message (as serially)."""
    other = tmp_path / "other"
    (other / "runs").mkdir(parents=True)
    for run in ("run-01", "run-02"):
        (other / "runs" / run).symlink_to(serial / "runs" / run)
    with pytest.raises(ValueError, match="other settings|made with"):
        run_protocol(tiny(other, workers=2, ood_size=61), log=lambda message: None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(workers=0), "workers must be a positive integer"),
    (dict(threads=0), "threads must be a positive integer"),
    (dict(scheduler=""), "scheduler must be a Dask scheduler address"),
    (dict(workers=2, scheduler="tcp://127.0.0.1:8786"), "not both"),
])
def test_bad_parallel_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_config(ReproduceConfig(**kwargs))


def test_without_dask_the_flags_say_how_to_install_it(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'skgradunc\[dask\]'"):
        check_config(ReproduceConfig(workers=2))
    check_config(ReproduceConfig())                     # serial runs need no dask
    assert cli.main(["reproduce", "--workers", "2", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    assert "pip install 'skgradunc[dask]'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_threads_each_run_uses(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert resolve_threads(ReproduceConfig()) == 8                     # serially: torch's
    assert resolve_threads(ReproduceConfig(workers=2)) == 4            # cores / workers
    assert resolve_threads(ReproduceConfig(workers=16)) == 1
    assert resolve_threads(ReproduceConfig(scheduler="tcp://h:8786")) == 1
    assert resolve_threads(ReproduceConfig(workers=2, threads=3)) == 3


def test_one_gpu_per_local_worker():
    assert [device_for_worker(n, 2) for n in (0, 1, 2, 3)] == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert device_for_worker("gpu-worker-a", 4) == "cuda"     # dask-cuda: its own GPU
    if not torch.cuda.is_available():
        assert parallel_runs._worker_device("auto") == "cpu"


def test_the_callers_environment_is_left_as_it_was(serial, tmp_path, monkeypatch):
    """A Dask nanny writes OMP_NUM_THREADS=1 (and more) into its own process's environment;
    a later subprocess of the caller would compute with one thread."""
    import os
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = dict(os.environ)
    # the nanny starts whatever the run does: run 1 resumed from the serial cache
    shutil.copytree(serial / "runs" / "run-01", tmp_path / "runs" / "run-01")
    run_protocol(tiny(tmp_path, runs=1, workers=1), log=lambda message: None)
    assert dict(os.environ) == before
