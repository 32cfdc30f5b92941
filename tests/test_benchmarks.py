"""The benchmark scripts run (tiny sizes, no timing assertions: speed lives in benchmarks/)."""

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_transformer.py"


def test_transformer_benchmark_runs(capsys):
    main = runpy.run_path(str(BENCH))["main"]
    rates = main(["--n", "32", "--naive-n", "4", "--batch-size", "16", "--repeats", "1",
                  "--device", "cpu"])
    # the package's own methods always run; Opacus/BackPACK only where '.[bench]' is installed
    assert {"engine (GradientMetricTransformer)", "engine forced to torch.func.vmap",
            "naive per-sample loop", "plain forward + loss.backward()",
            "plain forward + autograd.grad"} <= set(rates)
    assert all(rate > 0 for rate in rates.values())
    out = capsys.readouterr().out
    assert "engine ratio" in out
    assert "Opacus GradSampleModule" in out and "BackPACK BatchGrad" in out  # rate or n/a
    main(["--n", "32", "--batch-size", "16", "--repeats", "1", "--device", "cpu", "--phases"])
    assert "per-sample products" in capsys.readouterr().out


DATA_BENCH = BENCH.with_name("bench_data.py")


def test_data_benchmark_runs(capsys):
    main = runpy.run_path(str(DATA_BENCH))["main"]
    # two sources: each memory run is a fresh process (~3 CPU-s to import torch); every
    # source's features are checked identical in tests/test_data.py
    sources = {"array", "Dataset"}
    results = main(["--n", "300", "600", "--rate-n", "300", "--repeats", "1", "--jobs", "2",
                    "--sources", *sorted(sources)])
    assert set(results["rates"]) == sources
    assert all(rate > 0 for rate in results["rates"].values())
    assert results["ratios"]["array"] == 1
    assert results["identical"] == {name: True for name in sources - {"array"}}
    assert set(results["memory"]) == sources
    for runs in results["memory"].values():
        assert set(runs) == {300, 600}
        for run in runs.values():
            assert run["rate"] > 0 and run["samples"] > 0
            assert 0 < run["baseline_mb"] <= run["peak_mb"]
    assert set(results["increase_mb"]) == sources
    out = capsys.readouterr().out
    assert "ratio to array" in out and "peak RssAnon increase" in out


CLUSTER_BENCH = BENCH.with_name("bench_cluster_search.py")


def test_cluster_search_benchmark_runs(capsys, dask_client):
    main = runpy.run_path(str(CLUSTER_BENCH))["main"]
    results, clone_bytes = main(["--n", "120", "--epochs", "1", "--repeats", "1"],
                                client=dask_client)
    plain, once = results["dask backend alone"], results["sent_once"]
    assert plain["equal_scores"] and once["equal_scores"]
    # every task carried the network plainly, none inside sent_once
    assert plain["largest_bytes"] > clone_bytes > 20 * once["largest_bytes"]
    assert "sent_once" in capsys.readouterr().out
