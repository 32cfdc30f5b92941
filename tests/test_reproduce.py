"""The paper's protocol end to end, tiny: outputs, resume after interruption, atomic files."""

import json
import os
import pickle
import re
import shutil
import stat
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator

from skgradunc import CNNClassifier, cli
from skgradunc.detectors import _lee_alregib as detectors_module
from skgradunc import metrics
from skgradunc.metrics._calibration import reliability_bins
from skgradunc.detectors import gradnorm_score, lee_alregib_detector
from skgradunc.experiments import ReproduceConfig, run_protocol
from skgradunc.experiments.paper.protocol import resolve_config
from skgradunc.experiments.paper import protocol as protocol_module
from skgradunc.experiments.paper import runs as runs_module
from skgradunc.experiments.paper import tables as tables_module
from skgradunc.experiments.paper.data import load_experiment_data
from skgradunc.experiments.recipes import MNIST_SPLIT, PAPER_SPLIT
from skgradunc.experiments.io import atomic_path, write_text
from skgradunc.targets import correctness_target


def tiny(out, **kwargs):
    # on the CPU: exact resumes and reruns are a CPU property (cuDNN kernels are not
    # deterministic); tests/test_cuda.py runs the protocol on a GPU
    params = dict(data="digits", runs=2, out=str(out), epochs=2, ood_size=60, device="cpu")
    params.update(kwargs)
    return ReproduceConfig(**params)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    messages = []
    results = run_protocol(tiny(out), log=messages.append)
    return out, results, messages


def test_writes_every_table_and_the_figure(finished):
    out, results, messages = finished
    for name in ("tables.md", "tables.csv", "tables.json", "figure2.png", "reliability.png",
                 "lasso_coefficients.png", "config.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob(".*"))                    # no temporary files left behind
    assert set(results) == {"Table 1", "Table 2", "Table 3", "Calibration",
                            "LASSO coefficients", "In-distribution only", "Cost"}
    assert list(results["In-distribution only"]) == [
        "Softmax baseline", "ExGrad", "Energy", "Max. logit",
        "Mahalanobis, gradient metrics (training images)",
        "kNN, gradient metrics (training images)", "NAC-UE (training images)",
        "NAC-UE, alpha auto (training images)", "GAIA-A", "GAIA-Z"]
    assert set(results["Cost"]) == set(results["In-distribution only"]) - {"Softmax baseline"}
    assert all(row["cost"]["s / 1000 images"]["mean"] > 0 for row in results["Cost"].values())
    assert {"All-ones L2, network", "Uniform L1, network",
            "GradNorm (last-layer weight L1)"} <= set(results["Table 1"])
    assert {"GLM", "LASSO", "Ridge", "Elastic net"} <= set(results["Table 2"])
    levels = ["validation", "validation + uniform noise",
              "validation + uniform noise + natural images",
              "validation + uniform noise + natural images + letters"]
    assert list(results["Table 3"])[2:] == [f"{kind}: {level}" for level in levels
                                            for kind in ("NN", "Lee & AlRegib")]
    assert set(results["Calibration"]) == {"Softmax baseline",
                                           "Softmax baseline, temperature-scaled", "GLM",
                                           "LASSO", "Ridge", "Elastic net",
                                           *list(results["Table 3"])[2:]}
    for table in ("Table 1", "Table 2", "Table 3", "In-distribution only"):
        for row in results[table].values():
            assert {"AURC", "AUGRC"} <= set(row["wrong"])
            assert not {"AURC", "AUGRC"} & set(row["All"])
    for row in results["Calibration"].values():
        assert all(0 <= cell["ECE"]["mean"] <= 1 for cell in row.values())
    coefficients = results["LASSO coefficients"]
    assert list(coefficients) == ["conv1", "conv2", "conv3", "dense", "network", "softmax"]
    assert list(coefficients["softmax"]) == ["entropy"] and len(coefficients["conv1"]) == 8
    for cell in (c for row in coefficients.values() for c in row.values()):
        assert 0 <= cell["selected"]["mean"] <= 1
        assert cell["selected"]["mean"] > 0 or cell["coefficient"]["mean"] == 0
    cell = results["Table 2"]["LASSO"]["letters"]
    assert set(cell) == {"AUROC", "AUPR-In", "AUPR-Out", "FPR@95%TPR"}
    assert cell["AUROC"]["runs"] == 2 and 0 <= cell["AUROC"]["mean"] <= 1
    assert json.loads((out / "tables.json").read_text()) == results
    training = json.loads((out / "config.json").read_text())["training"]
    assert [t["run"] for t in training] == [1, 2] and all(0 < t["test_accuracy"] <= 1
                                                          for t in training)
    rows = (out / "tables.csv").read_text().splitlines()
    assert rows[0] == "table,score,row,column,mean,sem,runs"
    assert len(rows) == 1 + sum(len(scores) for t in results.values() for c in t.values()
                                for scores in c.values())
    markdown = (out / "tables.md").read_text()
    assert "## Table 3" in markdown and "| FPR@95%TPR | wrong | letters" in markdown
    assert "| ECE | test | test + unknowns |" in markdown
    assert "| layer | l1 | l2 | min | max | mean | std | skew | kurtosis | entropy |" in markdown
    assert "CNN test accuracy" in markdown
    for name in ("figure2.png", "reliability.png", "lasso_coefficients.png"):
        assert Image.open(out / name).size[0] > 500, name
    assert "done in" in messages[-1] and "LASSO" in messages[-1]


def test_each_run_is_its_own_resplit_and_network(finished):
    out, _, _ = finished
    first = np.load(out / "runs" / "run-01" / "features.npz")
    second = np.load(out / "runs" / "run-02" / "features.npz")
    assert first["test__predicted"].shape[1] == 42
    assert not np.array_equal(first["y_test"], second["y_test"])
    known = first["known__uniform noise"]
    assert len(known) == 30 and len(np.unique(known)) == 30   # half of 60, no repeats


def test_rerun_resumes_without_training_or_extracting(finished, monkeypatch):
    out, results, _ = finished

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was computed again")
    monkeypatch.setattr(runs_module, "_train", refuse)
    monkeypatch.setattr(runs_module, "_features", refuse)
    assert run_protocol(tiny(out), log=lambda m: None) == results


def test_interrupted_run_resumes_from_the_saved_network(finished, tmp_path, monkeypatch):
    original = runs_module._features
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(runs_module, "_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(tiny(tmp_path, runs=1), log=lambda m: None)
    run = tmp_path / "runs" / "run-01"
    assert (run / runs_module.NETWORK_FILE).is_file() and not (run / "features.npz").exists()
    assert not list(tmp_path.rglob(".*"))              # the interrupted write left nothing

    monkeypatch.setattr(runs_module, "_features", original)
    monkeypatch.setattr(runs_module, "_train", lambda *a, **k: pytest.fail("retrained"))
    run_protocol(tiny(tmp_path, runs=1), log=lambda m: None)
    # the network read back from its file gives exactly the features of the trained one
    # (the fixture's run 1 has the same settings and kept its network in memory)
    reloaded = dict(np.load(run / "features.npz"))
    trained = dict(np.load(finished[0] / "runs" / "run-01" / "features.npz"))
    assert reloaded.keys() == trained.keys()
    for key in trained:
        if not key.startswith("cost__"):   # the clock's
            np.testing.assert_array_equal(reloaded[key], trained[key], err_msg=key)


def test_the_network_file_rebuilds_a_fitted_classifier(finished, digits):
    out, _, _ = finished
    X, y = digits
    config = _resolved(out)
    run = out / "runs" / "run-01"
    net, attempts = runs_module.load_network(
        run / runs_module.NETWORK_FILE,
        runs_module.run_settings(config, 0, runs_module.NETWORK_SETTINGS), device="cpu")
    assert isinstance(net, CNNClassifier) and attempts[-1]["diverged"] is False
    assert net.input_shape_ == (1, 28, 28) and list(net.classes_) == list(range(10))
    assert net.get_params()["lr"] == attempts[-1]["lr"] == 0.01
    _, val, _ = runs_module.split_indices(len(X), config.split, np.random.RandomState(0))
    np.testing.assert_array_equal(correctness_target(net, X[val], y[val]),
                                  np.load(run / "features.npz")["y_validation"])


def _cached_run(out, run):
    """Run ``run``'s arrays as the protocol reads them from the cache (nothing computed)."""
    config = _resolved(out)
    data = load_experiment_data("digits", ood_size=config.ood_size, seed=config.seed)
    return runs_module.compute_run(config, data, run, log=pytest.fail)


@pytest.fixture(scope="module")
def first_run(finished, digits):
    """Run 1's network, sets and cached features, rebuilt from its files and the data."""
    out, _, _ = finished
    config = _resolved(out)
    folder = out / "runs" / "run-01"
    net, _ = runs_module.load_network(
        folder / runs_module.NETWORK_FILE,
        runs_module.run_settings(config, 0, runs_module.NETWORK_SETTINGS), device="cpu")
    X, y = digits
    _, val, test = runs_module.split_indices(len(X), config.split, np.random.RandomState(0))
    data = load_experiment_data("digits", ood_size=config.ood_size, seed=config.seed)
    arrays = runs_module.compute_run(config, data, 0, log=pytest.fail)   # from the cache
    np.testing.assert_array_equal(arrays["test__predicted"],
                                  np.load(folder / "features.npz")["test__predicted"])
    return net, (X[val], y[val]), (X[test], y[test]), data, arrays


def test_the_cnn_trains_on_the_training_images_and_schedules_on_the_validation_set(
        monkeypatch, digits):
    """As in the paper: every training image is trained on, the learning rate drops when
    the validation accuracy stagnates, and a diverged start is redrawn at the same lr."""
    X, y = digits
    seen = {}

    def recording(net, X_fit, y_fit, *, retries, lr_factor, seed_step, log):
        seen.update(net=net, n=len(X_fit), retries=retries, lr_factor=lr_factor,
                    seed_step=seed_step)
        raise KeyboardInterrupt   # what is passed is all this test needs
    monkeypatch.setattr(runs_module, "fit_with_recovery", recording)
    config = resolve_config(tiny("unused"), load_experiment_data("digits", ood_size=10))
    with pytest.raises(KeyboardInterrupt):
        runs_module._train(config, load_experiment_data("digits", ood_size=10), 0,
                           (X[:300], y[:300]), (X[300:400], y[300:400]), log=None)
    net = seen["net"]
    assert seen["n"] == 300 and (seen["retries"], seen["lr_factor"]) == (4, 1.0)
    assert seen["seed_step"] > 1000   # a retry never takes another run's seed
    assert net.lr_patience == 1
    train, valid = net.get_split_datasets(X[:300], y[:300])
    assert len(train) == 300 and len(valid) == 100
    np.testing.assert_array_equal(valid.X, X[300:400])


def test_the_published_detectors_rows_match_their_own_code(first_run):
    """Table 1's GradNorm row and Table 3's Lee & AlRegib rows, computed from the cache,
    against gradnorm_score and lee_alregib_detector run on the network and images."""
    net, (X_val, _), (X_test, _), data, run = first_run
    concepts, known = list(data.ood), list(data.known_unknowns)
    tables = tables_module.run_tables(run, concepts, known, random_state=0)
    y_test, y_val = run["y_test"], run["y_validation"]

    score = gradnorm_score(net, X_test, device="cpu")
    direction = 1 if metrics.auroc(y_val, gradnorm_score(net, X_val, device="cpu")) >= 0.5 \
        else -1
    assert tables["Table 1"]["GradNorm (last-layer weight L1)"]["wrong"]["AUROC"] == \
        pytest.approx(metrics.auroc(y_test, direction * score), abs=1e-6)

    # the detector with every known unknown, fitted end to end on images
    X_fit = np.concatenate([X_val] + [data.ood[c][run[f"known__{c}"]] for c in known])
    y_fit = np.r_[y_val, np.zeros(len(X_fit) - len(X_val))]
    detector = lee_alregib_detector(net, random_state=0, device="cpu").fit(X_fit, y_fit)
    row = tables["Table 3"]["Lee & AlRegib: validation + " + " + ".join(known)]
    confidence = detector.predict_proba(X_test)[:, 1]
    assert row["wrong"]["AUROC"] == pytest.approx(metrics.auroc(y_test, confidence), abs=1e-3)
    correct = confidence[y_test == 1]
    # an unseen concept, and a known unknown scored on its other images only
    for concept in ("normal noise", "uniform noise"):
        rows = np.setdiff1d(np.arange(len(data.ood[concept])), run.get(f"known__{concept}", []))
        assert len(rows) == len(data.ood[concept]) - (30 if concept in known else 0)
        other = detector.predict_proba(data.ood[concept][rows])[:, 1]
        assert row[concept]["AUROC"] == pytest.approx(metrics.auroc(
            np.r_[np.ones(len(correct)), np.zeros(len(other))], np.r_[correct, other]),
            abs=1e-3)


def test_calibration_and_reliability_follow_the_networks_own_probabilities(finished,
                                                                           first_run):
    net, _, (X_test, _), data, run = first_run
    concepts, known = list(data.ood), list(data.known_unknowns)
    reliability = {}
    tables = tables_module.run_tables(run, concepts, known, random_state=0,
                                      reliability=reliability)
    confidence = net.predict_proba(X_test).max(axis=1)
    cells = tables["Calibration"]["Softmax baseline"]
    assert cells["test"]["ECE"] == pytest.approx(
        metrics.expected_calibration_error(run["y_test"], confidence), abs=1e-5)
    # with the unknown concepts' evaluation images, every one of them wrong
    unknown = np.concatenate([
        net.predict_proba(data.ood[c][np.setdiff1d(np.arange(len(data.ood[c])),
                                                   run.get(f"known__{c}", []))]).max(axis=1)
        for c in concepts])
    assert cells["test + unknowns"]["ECE"] == pytest.approx(metrics.expected_calibration_error(
        np.r_[run["y_test"], np.zeros(len(unknown))], np.r_[confidence, unknown]), abs=1e-5)
    assert set(reliability) == set(tables["Calibration"])

    # after temperature scaling: the temperature minimises the log loss of the network's own
    # logits on the validation images (scipy), and the ECE is that of softmax(logits / T)
    X_val, y_val = first_run[1]
    np.testing.assert_array_equal(run["validation__labels"], y_val)
    val_logits = net.forward(X_val).double().numpy()
    np.testing.assert_allclose(run["validation__logits"], val_logits, rtol=1e-5, atol=1e-5)
    temperature = np.exp(minimize_scalar(lambda t: -log_softmax(val_logits / np.exp(t), axis=1)[
        np.arange(len(y_val)), y_val].mean()).x)
    scaled = softmax(net.forward(X_test).double().numpy() / temperature, axis=1).max(axis=1)
    assert tables["Calibration"]["Softmax baseline, temperature-scaled"]["test"]["ECE"] == \
        pytest.approx(metrics.expected_calibration_error(run["y_test"], scaled), abs=1e-4)
    # the selective scores of the softmax baseline, on the test predictions
    j = list(run["columns__predicted"]).index("softmax__max_prob")
    assert tables["Table 1"]["Softmax baseline"]["wrong"]["AURC"] == pytest.approx(
        metrics.aurc(run["y_test"], run["test__predicted"][:, j]), rel=1e-12)

    # two runs' bins pool into the bins of their samples together
    second = _cached_run(finished[0], 1)
    other = {}
    tables_module.run_tables(second, concepts, known, random_state=1, reliability=other)
    j = list(run["columns__predicted"]).index("softmax__max_prob")
    both = reliability_bins(np.r_[run["y_test"], second["y_test"]],
                            np.r_[run["test__predicted"][:, j], second["test__predicted"][:, j]])
    pooled = tables_module.pool_reliability([reliability, other])["Softmax baseline"]
    for mine, theirs in zip(pooled, both):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)


def _copy(out, tmp_path):
    return shutil.copytree(out, tmp_path / "copy")


def _resolved(out, **kwargs):
    """The tiny configuration as run_protocol resolves it for the digits (serially:
    torch's own thread count)."""
    return tiny(out, lr=0.01, split=PAPER_SPLIT, threads=torch.get_num_threads(), **kwargs)


def test_resuming_with_other_settings_is_refused(finished):
    out, _, _ = finished
    with pytest.raises(ValueError, match=r"other settings \(epochs: 2 then, 3 now\)"):
        run_protocol(tiny(out, epochs=3), log=lambda m: None)


def test_each_cached_run_carries_its_settings(finished, tmp_path):
    # no global settings file to delete: every cached file is checked on its own
    copy = _copy(out=finished[0], tmp_path=tmp_path)
    (copy / "runs" / "settings.json").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"run-01.features\.npz was made with other settings "
                                         r"\(epochs: 2 then, 3 now\).*delete"):
        run_protocol(tiny(copy, epochs=3), log=lambda m: None)
    for run in ("run-01", "run-02"):
        (copy / "runs" / run / "features.npz").unlink()
    with pytest.raises(ValueError, match=r"run-01.net\.pt was made with other settings "
                                         r"\(epochs: 2 then, 3 now\).*delete"):
        run_protocol(tiny(copy, epochs=3), log=lambda m: None)
    assert not (copy / "runs" / "settings.json").exists()


def test_a_cached_file_without_settings_is_refused(finished, tmp_path):
    copy = _copy(finished[0], tmp_path)
    features = copy / "runs" / "run-01" / "features.npz"
    arrays = dict(np.load(features))
    del arrays["settings"]
    np.savez(features, **arrays)
    with pytest.raises(ValueError, match=r"run-01.features\.npz records no settings.*delete"):
        run_protocol(tiny(copy), log=lambda m: None)


@pytest.mark.parametrize("then", [None, {"all_ones": "softmax"}])
def test_features_of_older_target_definitions_are_refused(finished, tmp_path, then):
    """Features cached before issue 13 (all_ones by per-class sigmoids, no "targets" in
    their settings), or with the detectors' norms per layer rather than per parameter
    tensor, are never mixed into tables of today's definitions."""
    copy = _copy(finished[0], tmp_path)
    features = copy / "runs" / "run-01" / "features.npz"
    arrays = dict(np.load(features))
    settings = json.loads(str(arrays["settings"]))
    settings["targets"] = then
    arrays["settings"] = np.array(json.dumps(settings))
    np.savez(features, **arrays)
    with pytest.raises(ValueError, match=r"run-01.features\.npz was made with other settings "
                                         rf"\(targets: {re.escape(repr(then))} then, "
                                         r"\{'all_ones': 'softmax', 'features'"):
        run_protocol(tiny(copy), log=lambda m: None)


def test_a_network_trained_another_way_is_refused(finished, tmp_path):
    """A net.pt from before the training protocol was recorded (issue 13: schedule on
    the validation set, retries at the same rate) is never reused."""
    copy = _copy(finished[0], tmp_path)
    folder = copy / "runs" / "run-01"
    (folder / "features.npz").unlink()
    payload = torch.load(folder / runs_module.NETWORK_FILE, weights_only=True)
    settings = json.loads(payload["settings"])
    del settings["training"]
    payload["settings"] = json.dumps(settings)
    torch.save(payload, folder / runs_module.NETWORK_FILE)
    with pytest.raises(ValueError, match=r"run-01.net\.pt was made with other settings "
                                         r"\(training: not recorded then, \{'schedule_on'"):
        run_protocol(tiny(copy), log=lambda m: None)


def _payload(marker):
    class Payload:  # unpickling it creates ``marker``
        def __reduce__(self):
            return open, (str(marker), "w")
    return pickle.dumps(Payload())


@pytest.mark.parametrize("name", ["net.pkl", "net.pt"])
def test_a_pickle_payload_in_the_cache_is_never_executed(tmp_path, name):
    marker = tmp_path / "payload-ran"
    run = tmp_path / "out" / "runs" / "run-01"
    run.mkdir(parents=True)
    (run / name).write_bytes(_payload(marker))
    with pytest.raises(ValueError, match=rf"run-01.{name}.*delete"):
        run_protocol(tiny(tmp_path / "out", runs=1), log=lambda m: None)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["features.npz", "net.pt"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cache_file_is_named_with_advice(finished, tmp_path, name, damage):
    copy = _copy(finished[0], tmp_path)
    path = copy / "runs" / "run-01" / name
    if name == "net.pt":
        (path.parent / "features.npz").unlink()
    content = path.read_bytes()
    path.write_bytes(b"not a cache file" * 8 if damage == "garbage"
                     else content[:len(content) // 2])
    with pytest.raises(ValueError, match=rf"run-01.{name}.*corrupt.*delete it"):
        run_protocol(tiny(copy), log=lambda m: None)


def test_config_json_records_the_settings_used(finished):
    out, _, _ = finished
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["lr"] == 0.01 and config["ood_size"] == 60
    assert config["split"] == list(PAPER_SPLIT)          # the digits' own, resolved
    assert config["device"] in ("cpu", "cuda")
    # the ceiling and, beside it, what each concept had
    assert config["ood_images"] == {"letters": 60, "natural images": 60, "uniform noise": 60,
                                    "normal noise": 60}


def test_ood_size_is_a_ceiling():
    """--ood-size 5000 on the digits gives 1000 images a concept (config.json's ood_images
    records the counts, checked above)."""
    data = load_experiment_data("digits", ood_size=5000)
    assert {len(X) for X in data.ood.values()} == {1000}


def test_a_new_ood_size_or_batch_size_reuses_the_trained_networks(finished, tmp_path):
    """Only the features depend on them: they are recomputed, the networks are not."""
    copy = _copy(finished[0], tmp_path)
    (copy / "runs" / "run-01" / "features.npz").unlink()
    messages = []
    run_protocol(tiny(copy, runs=1, ood_size=50, batch_size=64), log=messages.append)
    loaded = [m for m in messages if "loaded the trained network" in str(m)]
    assert len(loaded) == 1


@pytest.mark.parametrize("setting, value, message", [
    ("epochs", 0, "epochs must be a positive integer or None"),
    ("epochs", -1, "epochs must be a positive integer or None"),
    ("epochs", 2.5, "epochs must be a positive integer or None"),
    ("lr", 0, "lr must be a positive finite number or None"),
    ("lr", -0.1, "lr must be a positive finite number or None"),
    ("lr", float("nan"), "lr must be a positive finite number or None"),
    ("lr", float("inf"), "lr must be a positive finite number or None"),
    ("ood_size", -5, "ood_size must be a positive integer, got -5"),
    ("ood_size", 0, "ood_size must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("runs", 0, "runs must be a positive integer"),
    ("runs", True, "runs must be a positive integer"),
    ("seed", -1, "seed must be an integer from 0"),
    ("seed", 2 ** 32, "seed must be an integer from 0"),
    ("device", "gpu7", "unknown device 'gpu7'"),
])
def test_invalid_settings_are_refused_before_any_work(tmp_path, monkeypatch, setting, value,
                                                      message):
    monkeypatch.setattr(protocol_module, "compute_run", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ValueError, match=message):
        run_protocol(tiny(tmp_path / "out", **{"runs": 1, setting: value}), log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_meta_classifiers_are_seeded_from_the_config_seed_and_run(finished, tmp_path,
                                                                  monkeypatch):
    seeds = []

    class Recording(BaseEstimator):
        def __init__(self, method, random_state=None, **kwargs):
            seeds.append(random_state)

        def fit(self, X, y):
            self.estimator_ = [SimpleNamespace(coef_=np.zeros((1, X.shape[1])))]
            return self

        def predict_proba(self, X):
            return np.full((len(X), 2), 0.5)
    # the paper's meta classifiers, and Lee & AlRegib's detector
    monkeypatch.setattr(tables_module, "MetaClassifier", Recording)
    monkeypatch.setattr(detectors_module, "MetaClassifier", Recording)
    run = _cached_run(finished[0], 1)
    tables_module.run_tables(run, ["letters"], ["uniform noise"], random_state=7)
    assert len(seeds) == 4 + 2 * 2 and set(seeds) == {7}
    # the protocol passes seed + run: resumed from the cache, so nothing is trained
    passed = []
    original = protocol_module.run_tables
    monkeypatch.setattr(protocol_module, "run_tables", lambda *a, random_state, **k: (
        passed.append(random_state) or original(*a, random_state=random_state, **k)))
    run_protocol(tiny(_copy(finished[0], tmp_path)), log=lambda m: None)
    assert passed == [0, 1]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_result_files_respect_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "tables.md", "| a |\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "tables.md").stat().st_mode) == 0o666 & ~umask


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "table.md") as temporary:
            temporary.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        run_protocol(tiny(tmp_path, runs=0))
    with pytest.raises(ValueError, match="split"):
        run_protocol(tiny(tmp_path, split=(0.5, 0.5, 0.5)))
    with pytest.raises(ValueError, match="unknown data set"):
        run_protocol(tiny(tmp_path, data="imagenet"))
    with pytest.raises(ValueError, match="needs --root"):
        run_protocol(tiny(tmp_path, data="mnist"))


def test_command_line(tmp_path, capsys):
    cli.main(["reproduce", "--runs", "1", "--epochs", "1", "--ood-size", "40",
              "--out", str(tmp_path)])
    assert "done in" in capsys.readouterr().out
    assert (tmp_path / "tables.md").is_file()


def test_mnist_experiment_data_uses_the_real_sets(shared_data):
    data = load_experiment_data("mnist", shared_data, ood_size=50)
    assert len(data.X) == 70000 and data.X.shape[1:] == (1, 28, 28)
    assert list(data.ood) == ["notMNIST", "Omniglot", "CIFAR-10", "EMNIST letters",
                              "uniform noise", "normal noise"]
    assert all(len(X) == 50 for X in data.ood.values())
    assert data.known_unknowns == ("uniform noise", "CIFAR-10", "Omniglot")
    # 50,000 / 10,000 / 10,000 digits, 15 epochs (docs/reproduction.md says why)
    assert [len(part) for part in runs_module.split_indices(
        len(data.X), data.split, np.random.RandomState(0))] == [50000, 10000, 10000]
    assert (data.epochs, data.lr) == (15, 0.1)


def test_emnist_experiment_data_from_torchvision_files(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)

    def write(name, array):
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
            int(d).to_bytes(4, "big") for d in array.shape)
        (raw / name).write_bytes(header + array.astype(np.uint8).tobytes())
    for split, part, n in (("digits", "train", 30), ("digits", "test", 10),
                           ("letters", "test", 12)):
        write(f"emnist-{split}-{part}-images-idx3-ubyte", rng.randint(0, 256, (n, 28, 28)))
        labels = np.arange(n) % 10 if split == "digits" else 1 + np.arange(n) % 26
        write(f"emnist-{split}-{part}-labels-idx1-ubyte", labels)
    data = load_experiment_data("emnist", tmp_path, ood_size=8)
    assert len(data.X) == 40 and data.X.shape[1:] == (1, 28, 28)
    assert list(data.ood) == ["EMNIST letters", "uniform noise", "normal noise"]
    assert len(data.ood["EMNIST letters"]) == 8 and data.known_unknowns == ("uniform noise",)
    with pytest.raises(ValueError, match="needs --root"):
        load_experiment_data("emnist", None)


# issue 25: what a bad input campaign found

def _old_split_indices(n, proportions, rng):
    """split_indices before issue 25: the test set took whatever was left."""
    order = rng.permutation(n)
    n_train = int(round(proportions[0] * n))
    n_val = int(round(proportions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


@pytest.mark.parametrize("n, split, sizes", [
    (1797, (0.5, 0.2, 0.1), [898, 359, 180]),        # the digits: not 540 test images
    (70000, (0.02, 0.01, 0.01), [1400, 700, 700]),   # MNIST: not 67,900
    (10, (0.36, 0.36, 0.26), [4, 4, 2]),             # round(2.6) = 3, but only 2 are left
])
def test_the_split_honours_the_test_fraction(n, split, sizes):
    parts = runs_module.split_indices(n, split, np.random.RandomState(0))
    assert [len(part) for part in parts] == sizes
    assert len(np.unique(np.concatenate(parts))) == sum(sizes)     # disjoint
    assert runs_module.split_sizes(n, split) == tuple(sizes)


def test_the_default_splits_partition_as_before():
    """The paper's and MNIST's splits sum to 1: every data set size is split exactly as
    before issue 25, so the cached runs and published tables stay what they were."""
    for split in (PAPER_SPLIT, MNIST_SPLIT):
        for n in [1797, 70000, 280000, *range(1, 2000, 7)]:
            for seed in (0, 3):
                new = runs_module.split_indices(n, split, np.random.RandomState(seed))
                old = _old_split_indices(n, split, np.random.RandomState(seed))
                for mine, theirs in zip(new, old):
                    np.testing.assert_array_equal(mine, theirs, err_msg=f"{split} {n}")


def test_config_json_and_the_header_record_the_images_used(finished):
    out, _, _ = finished
    config = json.loads((out / "config.json").read_text())
    assert config["split_images"] == {"train": 385, "validation": 128, "test": 1284}
    assert "385 train / 128 validation / 1284 test images" in (out / "tables.md").read_text()
    features = np.load(out / "runs" / "run-01" / "features.npz")
    assert len(features["y_validation"]) == 128 and len(features["y_test"]) == 1284


def test_a_split_that_leaves_images_out_tests_on_its_own_fraction(tmp_path):
    messages = []
    run_protocol(tiny(tmp_path, runs=1, epochs=1, ood_size=20, split=(0.5, 0.2, 0.1)),
                 log=messages.append)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["split"] == [0.5, 0.2, 0.1]
    assert config["split_images"] == {"train": 898, "validation": 359, "test": 180}
    features = np.load(tmp_path / "runs" / "run-01" / "features.npz")
    assert len(features["y_validation"]) == 359 and len(features["y_test"]) == 180
    assert any("on 180 test images" in str(m) for m in messages)
    assert "898 train / 359 validation / 180 test images" in (tmp_path / "tables.md").read_text()


def test_a_split_that_leaves_a_part_empty_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol_module, "compute_run", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ValueError, match=r"split \(0\.5, 0\.2, 0\.0001\) leaves no test "
                                         r"images of the 1797"):
        run_protocol(tiny(tmp_path, split=(0.5, 0.2, 0.0001)), log=lambda m: None)


def test_resuming_with_another_thread_count_is_refused(finished, tmp_path):
    copy = _copy(finished[0], tmp_path)
    then = json.loads((copy / "config.json").read_text())["threads"]
    assert then == torch.get_num_threads()              # torch's own, serially
    with pytest.raises(ValueError, match=rf"run-01.features\.npz was made with other settings "
                                         rf"\(threads: {then} then, {then + 1} now\).*delete"):
        run_protocol(tiny(copy, threads=then + 1), log=lambda m: None)
    (copy / "runs" / "run-01" / "features.npz").unlink()
    with pytest.raises(ValueError, match=rf"run-01.net\.pt was made with other settings "
                                         rf"\(threads: {then} then, {then + 1} now\)"):
        run_protocol(tiny(copy, threads=then + 1), log=lambda m: None)
    run_protocol(tiny(copy, threads=then), log=lambda m: None)   # the same count: resumed


@pytest.mark.parametrize("name", ["features.npz", "net.pt"])
def test_a_cached_file_of_another_run_is_refused(finished, tmp_path, name):
    """run-02's file copied over run-01's is refused, not read as run 1's."""
    copy = _copy(finished[0], tmp_path)
    if name == "net.pt":
        (copy / "runs" / "run-01" / "features.npz").unlink()
    shutil.copyfile(copy / "runs" / "run-02" / name, copy / "runs" / "run-01" / name)
    with pytest.raises(ValueError, match=rf"run-01.{re.escape(name)} was made with other "
                                         r"settings \(run: 2 then, 1 now, run_seed: 1 then, 0 "
                                         r"now\); delete it"):
        run_protocol(tiny(copy), log=lambda m: None)


def test_a_cached_file_from_before_issue_25_is_refused(finished, tmp_path):
    """A file that records neither its run nor its thread count is refused clearly."""
    copy = _copy(finished[0], tmp_path)
    features = copy / "runs" / "run-01" / "features.npz"
    arrays = dict(np.load(features))
    settings = json.loads(str(arrays["settings"]))
    for key in ("run", "run_seed", "threads"):
        settings.pop(key, None)
    arrays["settings"] = np.array(json.dumps(settings))
    np.savez(features, **arrays)
    with pytest.raises(ValueError, match=r"run-01.features\.npz was made with other settings "
                                         r"\(threads: not recorded then, \d+ now, run: not "
                                         r"recorded then, 1 now, run_seed: not recorded then, "
                                         r"0 now\); delete it"):
        run_protocol(tiny(copy), log=lambda m: None)


@pytest.mark.parametrize("data", ["digits", "mnist", "emnist"])
def test_root_is_checked_before_any_work(tmp_path, data):
    from skgradunc.experiments import check_config
    if data == "digits":
        with pytest.raises(ValueError, match=r"--root is not used by the embedded digits "
                                             r"data set.*'/nonexistent'"):
            check_config(tiny(tmp_path, root="/nonexistent"))
        return
    with pytest.raises(ValueError, match=rf"--data {data} needs --root"):
        check_config(tiny(tmp_path, data=data))
    with pytest.raises(ValueError, match=r"--root '/nonexistent' does not exist"):
        check_config(tiny(tmp_path, data=data, root="/nonexistent"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match=r"--root '.*a-file' is not a folder"):
        check_config(tiny(tmp_path, data=data, root=str(tmp_path / "a-file")))
    check_config(tiny(tmp_path, data=data, root=str(tmp_path)))    # a folder: can be run
    assert not (tmp_path / "runs").exists()


def _no_space(target_name):
    """os.replace that fails, as on a full disk, when it would write ``target_name``."""
    import errno
    real = os.replace

    def replace(source, target, *args, **kwargs):
        if os.path.basename(target) == target_name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(source, target, *args, **kwargs)
    return replace


@pytest.mark.parametrize("writer", ["write_text", "save_arrays", "atomic_path"])
def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch, writer):
    from skgradunc.experiments import io as io_module
    monkeypatch.setattr(os, "replace", _no_space("result"))
    path = tmp_path / "result"
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(path))}: No space left "
                                      r"on device$"):
        if writer == "write_text":
            io_module.write_text(path, "| a |\n")
        elif writer == "save_arrays":
            io_module.save_arrays(path, a=np.zeros(3))
        else:
            with io_module.atomic_path(path) as temporary:
                temporary.write_bytes(b"half")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError, match=r"^cannot write .*a-file.sub.result: cannot create its "
                                      r"folder"):
        write_text(tmp_path / "a-file" / "sub" / "result", "x")


def test_in_distribution_rows_are_fitted_on_the_training_images_alone(tmp_path, monkeypatch):
    """Issue 27: NAC-UE and GAIA see 1,000 class-balanced training images at most,
    Mahalanobis and kNN the training images' gradient metrics (and, for Mahalanobis,
    their classes): never a validation image, a wrong prediction or an unknown."""
    from skgradunc.detectors import (GAIADetector, KNNDetector, MahalanobisDetector,
                                     NACDetector)
    from skgradunc.experiments.in_distribution import NAC_IMAGES, balanced_rows
    from skgradunc.experiments.paper.runs import split_indices
    seen = []
    for detector in (NACDetector, GAIADetector, MahalanobisDetector, KNNDetector):
        original = detector.fit
        monkeypatch.setattr(detector, "fit", lambda self, X, y=None, original=original: (
            seen.append((type(self).__name__, np.asarray(X), y)), original(self, X, y))[1])
    config = tiny(tmp_path, runs=1)
    run_protocol(config, log=lambda m: None)
    data = load_experiment_data("digits", ood_size=60, seed=0)
    X, y = data.X, data.y
    split = json.loads((tmp_path / "config.json").read_text())["split"]
    train = split_indices(len(X), split, np.random.RandomState(0))[0]
    run = np.load(tmp_path / "runs" / "run-01" / "features.npz")
    np.testing.assert_array_equal(run["train__labels"], y[train])
    fitting = X[train][balanced_rows(y[train], NAC_IMAGES, 0)]
    names = [name for name, _, _ in seen]
    assert names == ["NACDetector", "NACDetector", "GAIADetector", "GAIADetector",
                     "MahalanobisDetector", "KNNDetector"]
    for name, seen_X, seen_y in seen[:4]:
        np.testing.assert_array_equal(seen_X, fitting)
        assert seen_y is None
    columns = [i for i, c in enumerate(run["columns__predicted"]) if c != "softmax__max_prob"]
    train_features = run["train__predicted"][:, columns]
    for name, seen_X, seen_y in seen[4:]:   # after the scaler: the training features
        np.testing.assert_allclose(seen_X, np.nan_to_num(
            (train_features - train_features.mean(0)) / train_features.std(0)), atol=1e-9)
    np.testing.assert_array_equal(seen[4][2], y[train])
