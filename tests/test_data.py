"""Samples in any form a PyTorch user holds them (skgradunc/_data.py): the same features,
labels read from the items, bounded memory, clear errors naming the sample."""

import threading
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image
from skorch.helper import SliceDataset
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, TensorDataset

import skgradunc as sgu
from skgradunc import GradientMetricTransformer

from test_transformer import assert_same_snapshot, snapshot

N, SHAPE, BATCH = 37, (1, 8, 8), 16     # blocks of 16, 16 and 5


def small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3)).eval()


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.random((N, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 3, N)
    return X, y


class Items(Dataset):
    """A user's Dataset: items from a function of the index."""

    def __init__(self, n, item):
        self.n, self.item = n, item

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.item(index)


class Stream(IterableDataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __iter__(self):
        return ((torch.from_numpy(x), int(label)) for x, label in zip(self.X, self.y))


def every_form(X, y, path):
    """The same samples held every way the package takes them."""
    np.save(path, X)
    pairs = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    return {
        "array": X,
        "memmap": np.load(path, mmap_mode="r"),
        "tensor": torch.from_numpy(X.copy()),
        "dataset of (x, y)": pairs,
        "dataset of x": Items(len(X), lambda i: X[i]),
        "SliceDataset": SliceDataset(pairs),
        "DataLoader": DataLoader(pairs, batch_size=7),
        "IterableDataset": Stream(X, y),
    }


def test_features_are_identical_whatever_holds_the_samples(data, tmp_path):
    X, y = data
    module = small_cnn()
    expected = GradientMetricTransformer(module, batch_size=BATCH).fit_transform(X)
    for name, form in every_form(X, y, tmp_path / "X.npy").items():
        grad = GradientMetricTransformer(module, batch_size=BATCH).fit(form)
        assert grad.input_shape_ == SHAPE, name
        np.testing.assert_array_equal(grad.transform(form), expected, err_msg=name)


def test_uint8_samples_are_image_bytes_in_every_form(data, tmp_path):
    X, y = data
    images = (X * 255).astype(np.uint8)
    module = small_cnn()
    expected = GradientMetricTransformer(module, batch_size=BATCH).fit_transform(
        images.astype(np.float32) / np.float32(255))
    for name, form in every_form(images, y, tmp_path / "X.npy").items():
        got = GradientMetricTransformer(module, batch_size=BATCH).fit_transform(form)
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_tensor_is_read_on_its_device(data):
    X, _ = data
    module = small_cnn()
    expected = GradientMetricTransformer(module, batch_size=BATCH, device="cpu").fit_transform(X)
    on_gpu = torch.from_numpy(X).cuda()
    got = GradientMetricTransformer(module, batch_size=BATCH, device="cuda").fit_transform(
        on_gpu)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_device_tensor_blocks_match_host_blocks(dtype):
    """A CUDA tensor's blocks are converted by torch where it lives; the same rule (checked
    here on a CPU tensor) as numpy's conversion of host blocks, bit for bit."""
    from skgradunc._data import _ArraySamples, _DeviceTensorSamples
    X = (torch.rand(N, *SHAPE) * 255).to(dtype)
    args = (SHAPE, "X", "the network")
    on_device = list(_DeviceTensorSamples(X, *args).blocks(BATCH))
    on_host = list(_ArraySamples(X, *args).blocks(BATCH))
    assert [start for start, _, _ in on_device] == [0, 16, 32]
    for (_, a, _), (_, b, _) in zip(on_device, on_host):
        assert a.dtype == b.dtype == torch.float32
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        next(_DeviceTensorSamples(X.long(), *args).blocks(BATCH))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_memmap_is_never_read_whole(tmp_path, dtype):
    """Before: check_samples converted X whole (uint8 to a float32 copy, and a NaN check
    over all of it)."""
    X = np.random.default_rng(1).random((8000, *SHAPE), dtype=np.float32)
    np.save(tmp_path / "X.npy", (X * 255).astype(dtype) if dtype == np.uint8 else X)
    on_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    grad = GradientMetricTransformer(small_cnn(), batch_size=64,
                                     statistics=["l2"]).fit(on_disk)
    tracemalloc.start()     # numpy's allocations (not torch's): copies of X would show
    try:
        features = grad.transform(on_disk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert features.shape == (8000, 5)
    held = peak - features.nbytes     # besides the result: a few blocks at most
    assert held < X.nbytes / 8, f"{held} bytes held for {X.nbytes} bytes of float32 samples"


def test_dataset_items_are_read_ahead_in_a_background_thread(data):
    X, _ = data
    readers = set()

    def item(i):
        readers.add(threading.current_thread().name)
        return X[i]
    GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit_transform(Items(N, item))
    assert "skgradunc-reader" in readers
    assert not [t for t in threading.enumerate() if t.name == "skgradunc-reader"]


# -- labels from the data ---------------------------------------------------------------
def test_correctness_target_reads_labels_from_the_items(data, tmp_path):
    X, y = data
    module = small_cnn()
    expected = sgu.correctness_target(module, X, y)
    assert 0 < expected.sum() < N
    forms = every_form(X, y, tmp_path / "X.npy")
    for name in ("dataset of (x, y)", "SliceDataset", "DataLoader", "IterableDataset"):
        np.testing.assert_array_equal(sgu.correctness_target(module, forms[name]), expected,
                                      err_msg=name)
    for name in ("memmap", "tensor", "dataset of x"):   # no labels in these: y given
        np.testing.assert_array_equal(sgu.correctness_target(module, forms[name], y),
                                      expected, err_msg=name)
        with pytest.raises(ValueError, match="no labels.*pass y"):
            sgu.correctness_target(module, forms[name])


def test_correctness_target_of_a_skorch_net_on_a_dataset(fitted_net, digits_split):
    X, y = digits_split[2][:50], digits_split[3][:50]
    expected = sgu.correctness_target(fitted_net, X, y)
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    np.testing.assert_array_equal(sgu.correctness_target(fitted_net, dataset), expected)
    np.testing.assert_array_equal(
        sgu.correctness_target(FrozenEstimator(fitted_net), SliceDataset(dataset)), expected)


def test_out_of_distribution_rows_of_datasets(data):
    X, y = data
    noise = np.random.default_rng(2).random((9, *SHAPE), dtype=np.float32)
    module = small_cnn()
    X_arrays, y_arrays = sgu.append_out_of_distribution(X, y, noise)
    expected = sgu.correctness_target(module, X_arrays, y_arrays)
    assert (expected[N:] == 0).all()
    pairs = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    noise_items = Items(len(noise), lambda i: torch.from_numpy(noise[i]))
    joined, labels = sgu.append_out_of_distribution(pairs, None, noise_items)
    assert isinstance(joined, ConcatDataset) and labels is None and len(joined) == N + 9
    np.testing.assert_array_equal(sgu.correctness_target(module, joined), expected)
    joined, labels = sgu.append_out_of_distribution(SliceDataset(pairs), y, noise)
    np.testing.assert_array_equal(labels, y_arrays)
    np.testing.assert_array_equal(sgu.correctness_target(module, joined, labels), expected)
    np.testing.assert_array_equal(
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(joined),
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(X_arrays))


def test_joining_uint8_and_float_datasets_puts_both_on_the_float_scale(data):
    X, y = data
    images = (X * 255).astype(np.uint8)
    noise = np.random.default_rng(2).random((3, *SHAPE), dtype=np.float32)
    joined, _ = sgu.append_out_of_distribution(TensorDataset(torch.from_numpy(images)), y,
                                               noise)
    arrays, _ = sgu.append_out_of_distribution(images, y, noise)
    module = small_cnn()
    np.testing.assert_array_equal(
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(joined),
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(arrays))


# -- scikit-learn on a Dataset ----------------------------------------------------------
def test_cross_validation_and_grid_search_split_a_slice_dataset(data):
    X, y = data
    X, y = np.concatenate([X] * 3), np.concatenate([y] * 3)   # enough rows for 3 folds
    module = small_cnn()
    y_meta = sgu.correctness_target(module, X, y)
    pairs = SliceDataset(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))
    np.testing.assert_array_equal(sgu.correctness_target(module, pairs), y_meta)
    pipe = make_pipeline(GradientMetricTransformer(module, batch_size=BATCH),
                         sgu.MetaClassifier("ridge", random_state=0))
    folds = KFold(3)
    on_arrays = cross_val_score(pipe, X, y_meta, cv=folds, scoring="roc_auc")
    np.testing.assert_array_equal(
        cross_val_score(pipe, pairs, y_meta, cv=folds, scoring="roc_auc"), on_arrays)
    grid = {"metaclassifier__C": [0.1, 10.0]}
    search = GridSearchCV(pipe, grid, cv=folds, scoring="roc_auc").fit(pairs, y_meta)
    reference = GridSearchCV(pipe, grid, cv=folds, scoring="roc_auc").fit(X, y_meta)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  reference.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(search.predict_proba(pairs), reference.predict_proba(X))


def test_cnn_classifier_takes_a_slice_dataset(digits_split):
    X, y = digits_split[0][:120], digits_split[1][:120]
    dataset = SliceDataset(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))
    net = sgu.CNNClassifier(lr=0.01, max_epochs=1, batch_size=32, random_state=0, verbose=0,
                            train_split=None)
    on_arrays = net.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(net.fit(dataset, y).predict_proba(dataset), on_arrays,
                               rtol=1e-5, atol=1e-6)


def test_cnn_classifier_on_a_dataset_without_y_says_what_the_split_needs(digits_split):
    """Before: "too few samples for the internal validation split", with 600 samples."""
    X, y = digits_split[0], digits_split[1]
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    with pytest.raises(ValueError, match="data set without y.*stratifies by the labels"):
        sgu.CNNClassifier(max_epochs=1, random_state=0, verbose=0).fit(dataset, None)


# -- long work is visible; interrupts leave everything as it was ------------------------
def test_verbose_shows_a_progress_bar_and_is_quiet_by_default(data, capsys):
    X, _ = data
    GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit_transform(X)
    assert capsys.readouterr().err == ""
    GradientMetricTransformer(small_cnn(), batch_size=BATCH, verbose=True).fit_transform(X)
    err = capsys.readouterr().err
    assert "gradient features" in err and f"{N}/{N}" in err and "sample/s" in err


class _InterruptedOnCall(torch.nn.Module):
    def __init__(self, call):
        super().__init__()
        self.body, self.call, self.calls = small_cnn(), call, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt
        return self.body(x)


@pytest.mark.parametrize("where", ["network", "dataset"])
def test_an_interrupt_leaves_the_network_as_it_was(data, where):
    X, _ = data
    module = _InterruptedOnCall(call=0)
    module.train()
    grad = GradientMetricTransformer(module, batch_size=BATCH).fit(X)
    if where == "network":
        module.call = module.calls + 2     # the second chunk of transform
    before = snapshot(module)

    def item(i):
        if i == 20:
            raise KeyboardInterrupt
        return X[i]
    with pytest.raises(KeyboardInterrupt):
        grad.transform(X if where == "network" else Items(N, item))
    assert_same_snapshot(before, snapshot(module))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())
    assert not [t for t in threading.enumerate() if t.name == "skgradunc-reader"]
    module.call = 0
    np.testing.assert_array_equal(grad.transform(X), grad.transform(Items(N, lambda i: X[i])))


# -- bad input: a clear error naming the problem and the sample -------------------------
def bad_item(index, value):
    X = np.random.default_rng(0).random((N, *SHAPE), dtype=np.float32)
    return Items(N, lambda i: value if i == index else X[i])


@pytest.mark.parametrize("dataset, error, match", [
    (bad_item(20, np.zeros((1, 8, 9), np.float32)), ValueError,
     r"sample 20 of X has shape \(1, 8, 9\), sample 0 has \(1, 8, 8\)"),
    (bad_item(5, np.zeros(SHAPE, np.uint8)), TypeError,
     "sample 5 of X is uint8 but sample 0 is float32"),
    (bad_item(3, "a string"), TypeError, "sample 3 of X is not numeric"),
    (bad_item(3, {"image": 1}), TypeError, "sample 3 of X is a dict"),
    (bad_item(3, np.zeros(SHAPE, np.int64)), TypeError, "sample 3 of X has dtype int64"),
    (bad_item(3, Image.new("L", (8, 8))), TypeError, "sample 3 of X is a PIL image.*ToTensor"),
    (bad_item(21, np.full(SHAPE, np.nan, np.float32)), ValueError,
     r"NaN or infinity in 1 of the 16 samples from sample 16 on \(first: sample 21\)"),
    (Items(0, None), ValueError, "X is empty"),
    (DataLoader(TensorDataset(torch.rand(N, *SHAPE)), batch_size=4, shuffle=True),
     ValueError, "draws its samples with RandomSampler.*shuffle=False"),
    (DataLoader(TensorDataset(torch.rand(N, *SHAPE)), batch_size=None), ValueError,
     "batch_size=None"),
])
def test_bad_samples_are_refused_naming_the_sample(dataset, error, match):
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH)
    grad.fit(np.random.default_rng(0).random((2, *SHAPE), dtype=np.float32))
    with pytest.raises(error, match=match):
        grad.transform(dataset)


def test_fit_reads_only_the_first_samples_of_a_dataset_and_transform_all(data):
    X, _ = data
    read = []
    poisoned = Items(N, lambda i: read.append(i) or
                     (np.full(SHAPE, np.inf, np.float32) if i == 30 else X[i]))
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(poisoned)
    assert max(read) < BATCH
    with pytest.raises(ValueError, match=r"first: sample 30"):
        grad.transform(poisoned)
    with pytest.raises(ValueError, match="NaN"):   # in-memory inputs are checked whole
        GradientMetricTransformer(small_cnn()).fit(np.where(np.arange(N)[:, None, None, None]
                                                            == 30, np.nan, X))


def test_a_failing_dataset_names_the_sample_it_was_reading(data):
    X, _ = data

    def item(i):
        if i == 25:
            raise FileNotFoundError("image_25.png")
        return X[i]
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X)
    with pytest.raises(FileNotFoundError, match="image_25.png") as info:
        grad.transform(Items(N, item))
    assert "while reading sample 25 of X" in "".join(getattr(info.value, "__notes__", []))


def test_a_dataset_longer_than_its_items_fails_at_the_first_missing_one(data):
    X, _ = data

    class Longer(TensorDataset):
        def __len__(self):
            return N + 5
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X)
    with pytest.raises(IndexError) as info:
        grad.transform(Longer(torch.from_numpy(X)))
    assert f"while reading sample {N} of X" in "".join(getattr(info.value, "__notes__", []))


def test_a_loader_dropping_samples_gives_the_rows_it_yields(data):
    """A collate_fn that skips samples (broken images): rows for the samples that came."""
    X, _ = data
    kept = X.mean(axis=(1, 2, 3)) > 0.5
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=8,
                        collate_fn=lambda items: torch.stack([x for (x,) in items
                                                              if x.mean() > 0.5]))
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X)
    assert 5 < kept.sum() < N
    np.testing.assert_array_equal(grad.transform(loader), grad.transform(X[kept]))


CTRL_C_CHILD = """
import os, signal, sys, threading, time
import numpy as np, torch
sys.path.insert(0, {tests!r})
from test_transformer import assert_same_snapshot, snapshot
from test_data import Items, small_cnn
from skgradunc import GradientMetricTransformer

# as in an interactive session: a process started in the background by a shell without job
# control inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
module = small_cnn().train()
X = np.random.default_rng(0).random((200000, 1, 8, 8), dtype=np.float32)
grad = GradientMetricTransformer(module, batch_size=64, verbose=True).fit(X[:2])
before = snapshot(module)
threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    grad.transform(Items(len(X), lambda i: X[i]))
except KeyboardInterrupt:
    assert_same_snapshot(before, snapshot(module))
    assert not any(m._forward_hooks for m in module.modules())
    time.sleep(0.2)
    print("interrupted cleanly;", [t.name for t in threading.enumerate()])
"""


def test_ctrl_c_during_a_long_transform_leaves_everything_as_it_was():
    """A real SIGINT in the middle of a streamed transform (reader thread running)."""
    import subprocess
    import sys
    from pathlib import Path
    tests = str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", CTRL_C_CHILD.format(tests=tests)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "interrupted cleanly" in done.stdout
    assert "skgradunc-reader" not in done.stdout
    assert "gradient features" in done.stderr     # the progress bar was running


def test_a_loader_adding_samples_gives_every_row_it_yields(data):
    """More rows than the dataset's length (a collate_fn repeating each batch, as test-time
    augmentation may): the result grows past the expected size."""
    X, _ = data
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=8,
                        collate_fn=lambda items: torch.stack([x for (x,) in items]).repeat(
                            2, 1, 1, 1))
    repeated = np.concatenate([np.concatenate([X[i:i + 8]] * 2) for i in range(0, N, 8)])
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X)
    np.testing.assert_array_equal(grad.transform(loader), grad.transform(repeated))


# -- defects found in review (each failed before its fix) --------------------------------
def test_an_estimators_predict_gets_x_as_given():
    """Not float32 blocks: a DataFrame pipeline selecting columns by name, int features,
    and a float64 decision boundary that float32 would move."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline as pipeline
    from sklearn.preprocessing import StandardScaler
    clf = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    boundary = -clf.intercept_[0] / clf.coef_[0, 0]
    X = np.array([[np.nextafter(boundary, 1)], [np.nextafter(boundary, -1)]])
    np.testing.assert_array_equal(sgu.correctness_target(clf, X, clf.predict(X)), [1, 1])
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    y = [0, 1, 0, 1]
    model = pipeline(make_column_transformer((StandardScaler(), ["a", "b"])),
                     LogisticRegression()).fit(frame, y)
    np.testing.assert_array_equal(sgu.correctness_target(model, frame, model.predict(frame)),
                                  1)
    ints = np.array([[0], [1], [2], [3]])
    clf = LogisticRegression().fit(ints, y)
    assert sgu.correctness_target(clf, ints, clf.predict(ints)).all()


class LogOfInput(torch.nn.Module):
    """NaN outputs for negative inputs: the out-of-distribution rows below."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.linear(torch.log(x))


def test_out_of_distribution_rows_of_a_tensor_are_not_predicted():
    X = torch.tensor([[1.0, 2.0], [2.0, 1.0], [-1.0, -1.0]])
    target = sgu.correctness_target(LogOfInput(), X, [0, 1, -1], output="logits")
    assert target[2] == 0


@pytest.mark.parametrize("make_loader, match", [
    (lambda ds: DataLoader(ds, batch_size=3, sampler=[3, 1, 2, 0, 4, 5]), "draws its samples"),
    (lambda ds: DataLoader(ds, batch_size=3, sampler=torch.utils.data.DistributedSampler(
        ds, num_replicas=1, rank=0)), "DistributedSampler"),
    (lambda ds: DataLoader(ds, batch_size=4, collate_fn=list), "samples not stacked"),
    (lambda ds: DataLoader(Stream(np.zeros((4, *SHAPE), np.float32), np.zeros(4)),
                           batch_size=2, num_workers=2), "2 workers"),
])
def test_loaders_whose_rows_would_not_follow_x_are_refused(make_loader, match):
    dataset = Items(N, lambda i: torch.rand(*SHAPE))
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH)
    grad.fit(np.random.default_rng(0).random((2, *SHAPE), dtype=np.float32))
    with pytest.raises(ValueError, match=match):
        grad.transform(make_loader(dataset))


def test_a_sequential_batch_sampler_is_read(data):
    X, y = data
    pairs = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = DataLoader(pairs, batch_sampler=torch.utils.data.BatchSampler(
        torch.utils.data.SequentialSampler(pairs), 5, False))
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X)
    np.testing.assert_array_equal(grad.transform(loader), grad.transform(X))


class OneShot(IterableDataset):
    def __init__(self, X):
        self.items = iter(torch.from_numpy(X))

    def __iter__(self):
        return self.items


def test_an_iterable_dataset_that_cannot_start_again_is_refused(data):
    with pytest.raises(ValueError, match="same iterator on every iter"):
        GradientMetricTransformer(small_cnn()).fit_transform(OneShot(data[0]))


class Halved(SliceDataset):
    """A SliceDataset with its own indexing."""

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return item / 2 if isinstance(i, (int, np.integer)) else item


def test_a_slice_dataset_with_its_own_indexing_is_read_through_it(data):
    X, y = data
    module = small_cnn()
    halved = Halved(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)))
    np.testing.assert_array_equal(
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(halved),
        GradientMetricTransformer(module, batch_size=BATCH).fit_transform(X / 2))


def test_appending_to_a_dataframe_appends_its_rows(data):
    import pandas as pd
    X, y = data
    flat = X.reshape(N, -1)
    joined, labels = sgu.append_out_of_distribution(
        pd.DataFrame(flat), y, TensorDataset(torch.rand(3, flat.shape[1])))
    np.testing.assert_array_equal(joined[0][0].numpy(), flat[0])
    assert labels[-1] == -1 and len(joined) == N + 3


def test_an_appended_dataset_goes_through_a_dataloader(data):
    X, y = data
    joined, _ = sgu.append_out_of_distribution(
        TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), None, X[:5])
    batches = list(DataLoader(joined, batch_size=8))
    assert sum(len(x) for x, _ in batches) == N + 5
    assert torch.cat([labels for _, labels in batches]).tolist() == y.tolist() + [-1] * 5
    with pytest.raises(ValueError, match="carry no labels"):
        sgu.append_out_of_distribution(TensorDataset(torch.from_numpy(X)), None, X[:5])


def test_labels_read_from_items_name_the_bad_sample(data):
    X, y = data
    labels = y.astype(np.float32)
    labels[7] = np.nan
    with pytest.raises(ValueError, match="label of sample 7 of X is nan"):
        sgu.correctness_target(small_cnn(), TensorDataset(torch.from_numpy(X),
                                                          torch.from_numpy(labels)))
    labels = y.copy()
    labels[9] = 5
    with pytest.raises(ValueError, match="does not know: \\[5\\].*first: sample 9"):
        sgu.correctness_target(small_cnn(), TensorDataset(torch.from_numpy(X),
                                                          torch.from_numpy(labels)))


def test_an_error_is_not_held_back_by_a_stalled_read(data):
    """The reader is not waited for once the computation has failed."""
    import time
    X, _ = data

    def item(i):
        if i == BATCH + 2:
            time.sleep(6)
        return X[i]
    module = _InterruptedOnCall(call=0)
    grad = GradientMetricTransformer(module, batch_size=BATCH).fit(X)
    module.call = module.calls + 1         # the first chunk
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        grad.transform(Items(N, item))
    assert time.perf_counter() - started < 4


def test_a_loader_of_uncollated_items_is_refused_naming_the_collate_fn(data):
    """Issue 25: collate_fn=list over (x, y) items gave numpy's 'inhomogeneous shape'."""
    X, y = data
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X[:2])
    with pytest.raises(ValueError, match="list of 4 tuples: items not collated .*collate_fn"):
        grad.transform(DataLoader(dataset, batch_size=4, collate_fn=list))


def test_containers_no_reader_takes_are_named_with_what_is_taken(data):
    """Issue 25: a generator and a DataLoader where an array is needed said 'dtype
    object'; cluster.transform_blocks on a Dataset said numpy's 'inhomogeneous shape'."""
    X, y = data
    grad = GradientMetricTransformer(small_cnn(), batch_size=BATCH).fit(X[:2])
    with pytest.raises(TypeError, match="X is a generator, which can be read only once; X "
                                        "may be a numpy array .* a DataLoader"):
        grad.transform(x for x in X)
    with pytest.raises(TypeError, match="X is a generator, which can be read only once"):
        sgu.correctness_target(small_cnn(), (x for x in X), y)
    images = np.random.default_rng(0).random((40, 1, 16, 16), dtype=np.float32)
    ova = sgu.OneVsAllClassifier(max_epochs=1, verbose=0, device="cpu").fit(
        images, np.arange(40) % 2)
    loader = DataLoader(TensorDataset(torch.from_numpy(images[:4]), torch.zeros(4)),
                        batch_size=2)
    with pytest.raises(TypeError, match="X is a DataLoader, but an array or tensor of samples "
                                        "is needed here; pass its dataset"):
        ova.predict_proba(loader)
    assert ova.predict_proba(loader.dataset).shape == (4, 2)   # the advice works
    pytest.importorskip("dask")
    from skgradunc.cluster import transform_blocks
    with pytest.raises(TypeError, match="X is a TensorDataset, which transformer.transform"):
        transform_blocks(grad, TensorDataset(torch.from_numpy(X)))


def test_splitting_a_bare_dataset_names_slice_dataset(data):
    """Issue 25: cross_val_score over a bare TensorDataset gave numpy's words; scikit-learn
    indexes it into a list of (x, y) items, which the pipeline now refuses naming
    SliceDataset (a DataLoader is refused by scikit-learn itself, before any estimator)."""
    X, y = data
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    pipe = make_pipeline(GradientMetricTransformer(small_cnn(), batch_size=BATCH),
                         sgu.MetaClassifier())
    y_meta = np.arange(N) % 2
    with pytest.raises(TypeError, match="list of \\(x, y, ...\\) items: what scikit-learn's "
                                        "splitters .*SliceDataset\\(dataset\\)"):
        cross_val_score(pipe, dataset, y_meta, cv=2, error_score="raise")
    scores = cross_val_score(pipe, SliceDataset(dataset), y_meta, cv=2, error_score="raise")
    assert np.isfinite(scores).all()
