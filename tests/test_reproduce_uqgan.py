"""UQGAN's MNIST 0-4 benchmark end to end, tiny: files, scores against sklearn from the
cached outputs, resume, refusal of other settings, and the options it refuses."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from skgradunc import cli
from skgradunc.experiments import ReproduceConfig, check_config, run_protocol
from skgradunc.experiments.in_distribution import NAC_IMAGES, balanced_rows
from skgradunc.experiments.uqgan import runs as uqgan_runs
from skgradunc.experiments.uqgan.data import IN_DISTRIBUTION, load_uqgan_data
from skgradunc.experiments.uqgan.tables import (COST_TABLE, MAIN_TABLE, OOD_TABLE, PUBLISHED,
                                                TIME_TABLE)
from skgradunc.uqgan._softmax_baseline import SoftmaxBaseline

from conftest import SHARED_DATA

TINY = {"softmax_epochs": 2, "one_vs_all_epochs": 2, "cae_epochs": 1, "iterations": 3}
METHODS = ["Max. softmax", "Max. softmax, temperature-scaled", "Entropy", "One-vs-all", "UQGAN",
           "GradNorm",
           "LASSO, gradient metrics", "LASSO, gradient metrics + known unknowns",
           "NN, gradient metrics", "NN, gradient metrics + known unknowns",
           "ExGrad", "Energy", "Max. logit",
           "Mahalanobis, gradient metrics (training images)",
           "kNN, gradient metrics (training images)",
           "NAC-UE (training images)",
           "NAC-UE, alpha auto (training images)", "GAIA-A", "GAIA-Z"]
# scores that are no probability have no calibration error
WITHOUT_ECE = {"GradNorm", "ExGrad", "Energy", "Max. logit",
               "Mahalanobis, gradient metrics (training images)",
               "kNN, gradient metrics (training images)",
               "NAC-UE (training images)",
               "NAC-UE, alpha auto (training images)", "GAIA-A", "GAIA-Z"}


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist_root(root, digits):
    """MNIST's four IDX files made of the embedded digits (1,400 'train', 397 'test'),
    beside the real unknown concepts of ../shared/data where they are."""
    X, y = digits
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.round(X[:, 0] * 255)
    _write_idx(raw / "train-images-idx3-ubyte", images[:1400])
    _write_idx(raw / "train-labels-idx1-ubyte", y[:1400])
    _write_idx(raw / "t10k-images-idx3-ubyte", images[1400:])
    _write_idx(raw / "t10k-labels-idx1-ubyte", y[1400:])
    for name in ("omniglot", "cifar10", "notmnist", "emnist_sample"):
        if (SHARED_DATA / name).exists():
            (root / name).symlink_to(SHARED_DATA / name)
    return root


def tiny(root, out, **kwargs):
    """On the CPU: same seed, same tables is a CPU property (cuDNN kernels are not
    deterministic)."""
    return ReproduceConfig(**{"protocol": "uqgan", "root": str(root), "out": str(out),
                              "runs": 2, "ood_size": 60, "device": "cpu", **kwargs})


@pytest.fixture(autouse=True)
def _tiny_budget(monkeypatch):
    monkeypatch.setitem(uqgan_runs.PRESETS, "cpu", TINY)


@pytest.fixture(scope="module")
def root(tmp_path_factory, digits):
    return _mnist_root(tmp_path_factory.mktemp("data"), digits)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, root):
    out = tmp_path_factory.mktemp("uqgan")
    messages = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(uqgan_runs.PRESETS, "cpu", TINY)
        results = run_protocol(tiny(root, out), log=messages.append)
    return out, results, messages


def test_writes_the_table_beside_the_published_rows(finished):
    out, results, messages = finished
    for name in ("tables.md", "tables.csv", "tables.json", "config.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob(".*"))                     # no temporary file left behind
    assert list(results[MAIN_TABLE]) == METHODS
    for method, cells in results[MAIN_TABLE].items():
        expected = ({"Accuracy", "S/F AUROC", "AURC", "AUGRC"}
                    | (set() if method in WITHOUT_ECE else {"ECE"}))
        assert set(cells["test"]) == expected
        assert set(cells["All"]) == {"AUROC", "AUPR-In", "AUPR-Out", "FPR@95%TPR"}
        for value in (*cells["test"].values(), *cells["All"].values()):
            assert value["runs"] == 2 and 0 <= value["mean"] <= 1
    concepts = list(results[OOD_TABLE]["UQGAN"])
    assert concepts[:1] == ["MNIST 5-9"] and concepts[-2:] == ["uniform noise", "All"]
    assert json.loads((out / "tables.json").read_text()) == results
    markdown = (out / "tables.md").read_text()
    for method, published in PUBLISHED.items():
        assert f"| {method} (paper) | {published[0]:.2f} |" in markdown
    assert "| GradNorm | " in markdown and " | - | " in markdown   # no ECE for GradNorm
    config = json.loads((out / "config.json").read_text())
    assert (config["protocol"], config["preset"], config["budget"]) == ("uqgan", "cpu", TINY)
    assert config["data"] == "mnist" and config["runs"] == 2
    assert "done in" in messages[-1] and "UQGAN" in messages[-1]
    for stage in uqgan_runs.STAGES:
        assert (out / "runs" / "run-02" / f"{stage}.npz").is_file()


def _run_arrays(out, run=1):
    folder = Path(out) / "runs" / f"run-{run:02d}"
    return {stage: dict(np.load(folder / f"{stage}.npz")) for stage in uqgan_runs.STAGES}


def test_scores_follow_sklearn_on_the_cached_outputs(finished, root):
    """Run 1's cells recomputed from its cached outputs with scikit-learn alone."""
    out, _, _ = finished
    per_run = json.loads((out / "tables.json").read_text())   # the mean of 2 runs
    arrays = _run_arrays(out, 1), _run_arrays(out, 2)
    data = load_uqgan_data(root, ood_size=60, seed=0)
    expected = {"S/F": [], "OoD": [], "AUPR-In": [], "FPR": [], "AURC": []}
    for run, stages in enumerate(arrays):
        uqgan = stages["uqgan"]
        correct = uqgan["test__proba"].argmax(axis=1) == data.y_test
        entropy = -(uqgan["test__proba"] * np.log(uqgan["test__proba"])).sum(axis=1)
        expected["S/F"].append(roc_auc_score(correct, -entropy))
        ranked = correct[np.argsort(entropy)]           # most confident first
        expected["AURC"].append(np.mean(np.cumsum(~ranked) / np.arange(1, len(ranked) + 1)))
        rng = np.random.RandomState(run)     # the run's draws of known-unknown rows
        known = {c: rng.choice(60, 30, replace=False) for c in data.known_unknowns}
        outside = [uqgan[f"{c}__p_in"][np.setdiff1d(np.arange(60), known[c])]
                   if c in known else uqgan[f"{c}__p_in"] for c in data.ood]
        labels = np.r_[np.ones(len(data.y_test)), np.zeros(sum(map(len, outside)))]
        scores = np.r_[uqgan["test__p_in"], np.concatenate(outside)]
        expected["OoD"].append(roc_auc_score(labels, scores))
        expected["AUPR-In"].append(average_precision_score(labels, scores))
        threshold = np.sort(uqgan["test__p_in"])[::-1][int(np.ceil(0.95 * len(data.y_test))) - 1]
        expected["FPR"].append(np.mean(np.concatenate(outside) >= threshold))
    cells = per_run[MAIN_TABLE]["UQGAN"]
    np.testing.assert_allclose(cells["test"]["S/F AUROC"]["mean"], np.mean(expected["S/F"]),
                               rtol=1e-9)
    np.testing.assert_allclose(cells["test"]["AURC"]["mean"], np.mean(expected["AURC"]),
                               rtol=1e-9)
    scaled = per_run[MAIN_TABLE]["Max. softmax, temperature-scaled"]["test"]
    assert scaled["Accuracy"] == per_run[MAIN_TABLE]["Max. softmax"]["test"]["Accuracy"]
    np.testing.assert_allclose(cells["All"]["AUROC"]["mean"], np.mean(expected["OoD"]),
                               rtol=1e-9)
    np.testing.assert_allclose(cells["All"]["AUPR-In"]["mean"],
                               np.mean(expected["AUPR-In"]), rtol=1e-9)
    np.testing.assert_allclose(cells["All"]["FPR@95%TPR"]["mean"], np.mean(expected["FPR"]),
                               atol=1e-12)


def test_softmax_outputs_and_gradnorm_are_the_networks_own(finished, root):
    """The cached softmax outputs are probabilities and the max-softmax rows read them."""
    out, results, _ = finished
    softmax = _run_arrays(out, 1)["softmax"]
    np.testing.assert_allclose(softmax["test__proba"].sum(axis=1), 1, rtol=1e-6)
    assert softmax["test__features"].shape == (len(softmax["test__proba"]),
                                               len(softmax["columns"]))
    assert "softmax__entropy" in softmax["columns"] and "network__l2" in softmax["columns"]
    assert np.all(softmax["test__gradnorm"] > 0)


def test_rerun_resumes_from_the_cache_without_training(finished, root, monkeypatch):
    out, results, _ = finished
    for stage in uqgan_runs.STAGES:
        monkeypatch.setitem(uqgan_runs.TRAINERS, stage,
                            lambda *a, **k: pytest.fail("a cached stage was computed again"))
    assert run_protocol(tiny(root, out), log=lambda m: None) == results


def test_an_interrupted_stage_is_not_cached_and_the_rest_are_kept(root, tmp_path,
                                                                  monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    original = uqgan_runs.TRAINERS["uqgan"]
    monkeypatch.setitem(uqgan_runs.TRAINERS, "uqgan", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(tiny(root, tmp_path, runs=1), log=lambda m: None)
    folder = tmp_path / "runs" / "run-01"
    assert sorted(p.name for p in folder.iterdir()) == ["one_vs_all.npz", "softmax.npz"]
    monkeypatch.setitem(uqgan_runs.TRAINERS, "uqgan", original)
    for stage in ("softmax", "one_vs_all"):
        monkeypatch.setitem(uqgan_runs.TRAINERS, stage, lambda *a, **k: pytest.fail(stage))
    run_protocol(tiny(root, tmp_path, runs=1), log=lambda m: None)
    assert (folder / "uqgan.npz").is_file()


def test_a_stage_cached_with_another_budget_is_refused(finished, root, monkeypatch, tmp_path):
    out, _, _ = finished
    monkeypatch.setitem(uqgan_runs.PRESETS, "cpu", {**TINY, "iterations": 4})
    with pytest.raises(ValueError, match=r"uqgan\.npz was made with other settings "
                                         r"\(iterations: 3 then, 4 now\)"):
        run_protocol(tiny(root, out), log=lambda m: None)


def test_the_same_seed_gives_the_same_tables(finished, root, tmp_path):
    _, results, _ = finished
    again = run_protocol(tiny(root, tmp_path), log=lambda m: None)
    clock = (TIME_TABLE, COST_TABLE)   # the only cells that depend on the clock
    assert set(again) == set(results)
    for table in clock:
        assert set(again.pop(table)) == set(results[table])
    assert again == {k: v for k, v in results.items() if k not in clock}


def test_the_cli_runs_it_and_refuses_what_it_does_not_take(root, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["reproduce", "--protocol", "uqgan", "--root", str(root), "--runs", "1",
                     "--ood-size", "40", "--out", str(out)]) == 0
    assert (out / "tables.md").is_file()
    assert "UQGAN" in capsys.readouterr().out
    refused = {("--data", "digits"): "runs on MNIST 0-4 only",
               ("--epochs", "3"): "epochs: only for --protocol paper",
               ("--split", "0.5", "0.2", "0.3"): "split: only for --protocol paper"}
    for options, message in refused.items():
        status = cli.main(["reproduce", "--protocol", "uqgan", "--root", str(root),
                           *options, "--out", str(tmp_path / "refused")])
        assert status == cli.EXIT_USAGE and message in capsys.readouterr().err, options
    assert cli.main(["reproduce", "--preset", "authors", "--out",
                     str(tmp_path / "refused")]) == cli.EXIT_USAGE
    assert "preset: only for --protocol uqgan" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    with pytest.raises(ValueError, match="needs --root"):
        run_protocol(ReproduceConfig(protocol="uqgan", out=str(tmp_path / "none")))


def test_protocol_defaults_fill_what_is_not_given(tmp_path):
    check_config(ReproduceConfig(protocol="uqgan", root=str(tmp_path)))
    check_config(ReproduceConfig())                         # paper: digits, 10 runs
    with pytest.raises(ValueError, match="unknown protocol 'uqgan2'"):
        check_config(ReproduceConfig(protocol="uqgan2"))
    with pytest.raises(ValueError, match="unknown preset 'gpu'"):
        check_config(ReproduceConfig(protocol="uqgan", preset="gpu"))


def test_uqgan_data_on_the_real_files(shared_data):
    data = load_uqgan_data(shared_data, ood_size=500, seed=0)
    assert data.X_train.shape == (30596, 1, 28, 28) and len(data.X_test) == 5139
    assert set(np.unique(data.y_train)) == set(IN_DISTRIBUTION) == set(np.unique(data.y_test))
    assert list(data.ood) == ["MNIST 5-9", "EMNIST letters", "Omniglot", "CIFAR-10",
                              "notMNIST", "uniform noise"]
    assert all(len(X) == 500 and X.shape[1:] == (1, 28, 28) for X in data.ood.values())
    assert data.known_unknowns == ("uniform noise", "CIFAR-10", "Omniglot")
    # MNIST 5-9 are test digits none of which is among the in-distribution test images
    flat = {x.tobytes() for x in data.X_test[:, 0]}
    assert not any(x.tobytes() in flat for x in data.ood["MNIST 5-9"][:, 0])


def test_the_softmax_baseline_decays_its_rate_linearly_to_min_lr(digits):
    X, y = digits
    net = SoftmaxBaseline(max_epochs=3, lr=1e-3, min_lr=1e-5, random_state=0, verbose=0,
                          batch_size=128, device="cpu").fit(X[:300], y[:300])
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert isinstance(net.criterion_, torch.nn.CrossEntropyLoss)
    np.testing.assert_allclose(net.predict_proba(X[:5]).sum(axis=1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match="min_lr must be a positive number at most lr"):
        SoftmaxBaseline(max_epochs=1, lr=1e-3, min_lr=1e-2).fit(X[:100], y[:100])


# issue 25: every stage's file carries its run and thread count; --root is an option

def _copy(out, tmp_path):
    return Path(shutil.copytree(out, tmp_path / "copy"))


def test_a_stage_made_with_another_thread_count_is_refused(finished, root, tmp_path):
    copy = _copy(finished[0], tmp_path)
    then = json.loads((copy / "config.json").read_text())["threads"]
    with pytest.raises(ValueError, match=rf"run-01.softmax\.npz was made with other settings "
                                         rf"\(threads: {then} then, {then + 1} now\)"):
        run_protocol(tiny(root, copy, threads=then + 1), log=lambda m: None)


@pytest.mark.parametrize("stage", uqgan_runs.STAGES)
def test_a_stage_of_another_run_is_refused(finished, root, tmp_path, stage):
    copy = _copy(finished[0], tmp_path)
    shutil.copyfile(copy / "runs" / "run-02" / f"{stage}.npz",
                    copy / "runs" / "run-01" / f"{stage}.npz")
    with pytest.raises(ValueError, match=rf"run-01.{stage}\.npz was made with other settings "
                                         r"\(run: 2 then, 1 now, run_seed: 1 then, 0 now\); "
                                         r"delete it"):
        run_protocol(tiny(root, copy), log=lambda m: None)


def test_config_json_records_the_images_of_each_part(finished, root):
    config = json.loads((finished[0] / "config.json").read_text())
    data = load_uqgan_data(root, ood_size=60, seed=0)
    n_validation = int(round(len(data.X_train) / 6))
    assert config["split_images"] == {"train": len(data.X_train) - n_validation,
                                      "validation": n_validation, "test": len(data.X_test)}
    softmax = np.load(finished[0] / "runs" / "run-01" / "softmax.npz")
    assert len(softmax["validation__proba"]) == n_validation
    assert len(softmax["test__proba"]) == len(data.X_test)


def test_in_distribution_rows_are_fitted_on_the_training_images_alone(
        finished, root, monkeypatch):
    """Issue 27: the Mahalanobis and kNN rows see the training images' gradient metrics
    (and their classes) and nothing else: no validation error, no unknown."""
    from skgradunc.detectors import KNNDetector, MahalanobisDetector
    from skgradunc.experiments.uqgan import tables
    out, _, _ = finished
    softmax = _run_arrays(out, 1)["softmax"]
    seen = []
    for detector in (KNNDetector, MahalanobisDetector):
        original = detector.fit
        monkeypatch.setattr(detector, "fit", lambda self, X, y=None, original=original: (
            seen.append((type(self).__name__, X, y)), original(self, X, y))[1])
    # the methods the table makes of them (its _methods calls exactly this)
    rows = tables.in_distribution_methods(softmax)
    assert set(rows) == {"ExGrad", "Energy", "Max. logit",
                         "Mahalanobis, gradient metrics (training images)",
                         "kNN, gradient metrics (training images)",
                         "NAC-UE (training images)",
                         "NAC-UE, alpha auto (training images)", "GAIA-A", "GAIA-Z"}
    train = softmax["train__features"]
    assert [name for name, _, _ in seen] == ["MahalanobisDetector", "KNNDetector"]
    for name, X, y in seen:   # after the scaler: standardised training features
        columns = [i for i, c in enumerate(softmax["columns"]) if c != "softmax__max_prob"]
        expected = (train[:, columns] - train[:, columns].mean(0)) / train[:, columns].std(0)
        np.testing.assert_allclose(X, np.nan_to_num(expected), atol=1e-9)
        assert len(X) == len(softmax["train__labels"]) > len(softmax["validation__proba"])
    np.testing.assert_array_equal(seen[0][2], softmax["train__labels"])   # their classes
    assert seen[1][2] is None


def test_scores_fitted_on_nothing_are_the_networks_own(finished, root):
    """Energy, the maximum logit and ExGrad read the cached logits and expected gradient
    norms; their cells recomputed with scikit-learn."""
    out, _, _ = finished
    per_run = json.loads((out / "tables.json").read_text())
    data = load_uqgan_data(root, ood_size=60, seed=0)
    values = {"Energy": [], "Max. logit": [], "ExGrad": []}
    for run in (1, 2):
        softmax = _run_arrays(out, run)["softmax"]
        correct = softmax["test__proba"].argmax(axis=1) == data.y_test
        np.testing.assert_allclose(np.exp(softmax["test__logits"] - np.logaddexp.reduce(
            softmax["test__logits"], axis=1)[:, None]), softmax["test__proba"], rtol=1e-5)
        values["Energy"].append(roc_auc_score(correct, np.logaddexp.reduce(
            softmax["test__logits"], axis=1)))
        values["Max. logit"].append(roc_auc_score(correct, softmax["test__logits"].max(1)))
        values["ExGrad"].append(roc_auc_score(correct, -softmax["test__exgrad"]))
    for name, expected in values.items():
        np.testing.assert_allclose(per_run[MAIN_TABLE][name]["test"]["S/F AUROC"]["mean"],
                                   np.mean(expected), rtol=1e-9, err_msg=name)


def test_activation_gradient_detectors_are_fitted_on_training_images_alone(
        root, monkeypatch):
    """Issue 27: NAC-UE's coverage and GAIA's thresholds are fitted on 1,000
    class-balanced images of the softmax network's training part: no validation image,
    no unknown."""
    from skgradunc.detectors import GAIADetector, NACDetector
    data = load_uqgan_data(root, ood_size=60, seed=0)
    config = dataclasses.replace(tiny(root, "unused"), preset="cpu", batch_size=64)
    train, validation = uqgan_runs._split(len(data.X_train), 0)
    seen = []
    for detector in (NACDetector, GAIADetector):
        original = detector.fit
        monkeypatch.setattr(detector, "fit", lambda self, X, y=None, original=original: (
            seen.append((type(self).__name__, np.asarray(X), y)), original(self, X, y))[1])
    sets = {"validation": data.X_train[validation], "test": data.X_test,
            "MNIST 5-9": data.ood["MNIST 5-9"]}
    arrays = uqgan_runs._softmax(config, (data.X_train[train], data.y_train[train]), sets,
                                 0, "test")
    assert [name for name, _, _ in seen] == ["NACDetector", "NACDetector", "GAIADetector",
                                             "GAIADetector"]
    rows = balanced_rows(data.y_train[train], NAC_IMAGES, 0)
    expected = data.X_train[train][rows]
    # as many of each class as it has, up to an equal share (the tiny digits have fewer)
    np.testing.assert_array_equal(np.bincount(data.y_train[train][rows]), np.minimum(
        NAC_IMAGES // len(IN_DISTRIBUTION), np.bincount(data.y_train[train])))
    for _, X, y in seen:
        np.testing.assert_array_equal(X, expected)
        assert y is None
    for name in sets:   # every output of every set, and a positive cost of each
        for key in ("nac", "nac_auto", "gaia_a", "gaia_z"):
            assert arrays[f"{name}__{key}"].shape == (len(sets[name]),)
    assert all(arrays[f"cost__{key}"] > 0 for key in uqgan_runs.SOFTMAX_OUTPUTS
               if f"cost__{key}" in arrays)
    assert {k for k in arrays if k.startswith("cost__")} == {
        f"cost__{k}" for k in ("proba", "logits", "features", "gradnorm", "exgrad", "nac",
                               "nac_auto", "gaia_a", "gaia_z")}


def test_each_softmax_row_reports_its_cost(finished):
    _, results, _ = finished
    timed = set(results[COST_TABLE])
    assert timed == set(METHODS) - {"One-vs-all", "UQGAN"}
    for row in timed:
        assert results[COST_TABLE][row]["cost"]["s / 1000 images"]["mean"] > 0
    text = (finished[0] / "tables.md").read_text()
    assert "s / 1000 images" in text
