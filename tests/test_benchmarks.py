"""The benchmark scripts run (tiny sizes, no timing assertions: speed lives in benchmarks/)."""

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_transformer.py"


def test_transformer_benchmark_runs(capsys):
    main = runpy.run_path(str(BENCH))["main"]
    rates = main(["--n", "32", "--naive-n", "4", "--batch-size", "16", "--repeats", "1",
                  "--device", "cpu"])
    assert set(rates) == {"engine (GradientMetricTransformer)", "naive per-sample loop",
                          "plain forward + loss.backward()", "plain forward + autograd.grad"}
    assert all(rate > 0 for rate in rates.values())
    assert "engine ratio" in capsys.readouterr().out
    main(["--n", "32", "--batch-size", "16", "--repeats", "1", "--device", "cpu", "--phases"])
    assert "per-sample products" in capsys.readouterr().out
