"""The paper's protocol end to end, tiny: outputs, resume after interruption, atomic files."""

import json
import os
import pickle
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from skgradunc import CNNClassifier, cli
from skgradunc.experiments import ReproduceConfig, run_protocol
from skgradunc.experiments import protocol as protocol_module
from skgradunc.experiments import runs as runs_module
from skgradunc.experiments import tables as tables_module
from skgradunc.experiments.data import load_experiment_data
from skgradunc.experiments.io import atomic_path, write_text
from skgradunc.targets import correctness_target


def tiny(out, **kwargs):
    params = dict(data="digits", runs=2, out=str(out), epochs=2, ood_size=60)
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
    for name in ("tables.md", "tables.csv", "tables.json", "figure2.png", "config.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob(".*"))                    # no temporary files left behind
    assert set(results) == {"Table 1", "Table 2", "Table 3"}
    assert "All-ones L2 (Lee & AlRegib)" in results["Table 1"]
    assert "Uniform L1 (GradNorm)" in results["Table 1"]
    assert {"GLM", "LASSO", "Ridge", "Elastic net"} <= set(results["Table 2"])
    assert list(results["Table 3"])[-1] == ("NN: validation + uniform noise + natural images + "
                                            "letters")
    cell = results["Table 2"]["LASSO"]["letters"]
    assert set(cell) == {"AUROC", "AUPR-In", "AUPR-Out", "FPR@95%TPR"}
    assert cell["AUROC"]["runs"] == 2 and 0 <= cell["AUROC"]["mean"] <= 1
    assert json.loads((out / "tables.json").read_text()) == results
    training = json.loads((out / "config.json").read_text())["training"]
    assert [t["run"] for t in training] == [1, 2] and all(0 < t["test_accuracy"] <= 1
                                                          for t in training)
    rows = (out / "tables.csv").read_text().splitlines()
    assert rows[0] == "table,score,row,column,mean,sem,runs"
    assert len(rows) == 1 + sum(len(c) * 4 for t in results.values() for c in t.values())
    markdown = (out / "tables.md").read_text()
    assert "## Table 3" in markdown and "| FPR@95%TPR | wrong | letters" in markdown
    assert "CNN test accuracy" in markdown
    assert Image.open(out / "figure2.png").size[0] > 500
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
        np.testing.assert_array_equal(reloaded[key], trained[key], err_msg=key)


def test_the_network_file_rebuilds_a_fitted_classifier(finished, digits):
    out, _, _ = finished
    X, y = digits
    config = _resolved(out)
    run = out / "runs" / "run-01"
    net, attempts = runs_module.load_network(
        run / runs_module.NETWORK_FILE,
        runs_module.run_settings(config, runs_module.NETWORK_SETTINGS), device="cpu")
    assert isinstance(net, CNNClassifier) and attempts[-1]["diverged"] is False
    assert net.input_shape_ == (1, 28, 28) and list(net.classes_) == list(range(10))
    assert net.get_params()["lr"] == attempts[-1]["lr"] == 0.01
    _, val, _ = runs_module.split_indices(len(X), config.split, np.random.RandomState(0))
    np.testing.assert_array_equal(correctness_target(net, X[val], y[val]),
                                  np.load(run / "features.npz")["y_validation"])


def _copy(out, tmp_path):
    return shutil.copytree(out, tmp_path / "copy")


def _resolved(out, **kwargs):
    """The tiny configuration as run_protocol resolves it for the digits."""
    return tiny(out, lr=0.01, **kwargs)


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


def test_features_of_the_sigmoid_all_ones_target_are_refused(finished, tmp_path):
    """Features cached before issue 13 (all_ones by per-class sigmoids, no "targets" in
    their settings) are never mixed into tables of the softmax reading."""
    copy = _copy(finished[0], tmp_path)
    features = copy / "runs" / "run-01" / "features.npz"
    arrays = dict(np.load(features))
    settings = json.loads(str(arrays["settings"]))
    del settings["targets"]
    arrays["settings"] = np.array(json.dumps(settings))
    np.savez(features, **arrays)
    with pytest.raises(ValueError, match=r"run-01.features\.npz was made with other settings "
                                         r"\(targets: None then, \{'all_ones': 'softmax'\}"):
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
    for run in ("run-01", "run-02"):
        (copy / "runs" / run / "features.npz").unlink()
    messages = []
    run_protocol(tiny(copy, ood_size=50, batch_size=64), log=messages.append)
    loaded = [m for m in messages if "loaded the trained network" in str(m)]
    assert len(loaded) == 2


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

    class Recording:
        def __init__(self, method, random_state=None):
            seeds.append(random_state)

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.full((len(X), 2), 0.5)
    monkeypatch.setattr(tables_module, "MetaClassifier", Recording)
    run = dict(np.load(finished[0] / "runs" / "run-02" / "features.npz"))
    tables_module.run_tables(run, ["letters"], ["uniform noise"], random_state=7)
    assert seeds and set(seeds) == {7}
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
