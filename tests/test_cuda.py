"""On a CUDA GPU: the estimators train and predict there, the features equal the CPU's and the
float64 reference's, the user's network stays where it was, and TF32's effect is measured.

Skipped without a GPU. The float64-reference zoo runs on the GPU too with
``SKGRADUNC_TEST_DEVICE=cuda`` (tests/devices.py).
"""

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from skgradunc import (CNNClassifier, GradientMetricTransformer, OneVsAllClassifier, PaperCNN,
                       UQGANClassifier)
from skgradunc._device import resolve_device
from skgradunc.detectors import gradnorm_score
from skgradunc.experiments import ReproduceConfig, run_protocol
from skgradunc.statistics import STATISTICS

from reference import assert_matches_reference, reference_features
from test_gradient_reference import randomized, unit_spread_resnet18
from tolerances import assert_features_close

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _max_relative_error(names, features, reference):
    """The largest error of any feature relative to its size, with a floor where a quantity
    may be near zero (as tests/reference.py: a mean against its group's RMS; skewness and
    kurtosis, O(1), absolute; any other against its column's median magnitude)."""
    worst = 0.0
    for j, name in enumerate(names):
        group, statistic = name.split("__")
        ref = reference[name]
        if statistic == "mean":
            floor = reference[f"{group}__rms"]
        elif statistic in ("skew", "kurtosis", "entropy", "max_prob"):
            floor = 1.0
        else:
            floor = np.median(np.abs(ref))
        worst = max(worst, float(np.max(np.abs(features[:, j] - ref) / (np.abs(ref) + floor))))
    return worst


def test_auto_means_the_gpu():
    assert resolve_device("auto") == "cuda"
    assert CNNClassifier().device == "cuda"


@pytest.mark.parametrize("model", ["paper_cnn", "resnet18"])
def test_the_users_tf32_setting_does_not_reach_the_features(model, monkeypatch):
    """PyTorch's default runs cuDNN convolutions in TF32 (a 10-bit mantissa); the engine
    holds full float32 while it computes (skgradunc/_gpu_numerics.py) and gives the
    user's setting back. What TF32 would have cost is printed (docs/performance.md: up to
    15 % on ResNet-18 on an H100)."""
    from skgradunc import _gpu_numerics
    torch.manual_seed(5)
    if model == "paper_cnn":
        module, X = randomized(PaperCNN(), seed=5), torch.rand(12, 1, 28, 28).numpy()
    else:
        module, X = unit_spread_resnet18(seed=5, n=6)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        grad = GradientMetricTransformer(module, device="cuda", batch_size=5).fit(X)
        names = list(grad.get_feature_names_out())
        reference = reference_features(module, X, "predicted", grad.groups_, STATISTICS)
        features = grad.transform(X)
        assert torch.backends.cudnn.allow_tf32      # the user's setting, given back
        with monkeypatch.context() as patch:        # what TF32 would have given
            patch.setattr(_gpu_numerics, "_FULL_FLOAT32", _Unheld())
            tf32 = _max_relative_error(names, grad.transform(X), reference)
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    print(f"\n{model}: largest relative error against float64: "
          f"{_max_relative_error(names, features, reference):.1e}; in TF32 {tf32:.1e}")
    assert_matches_reference(names, features, reference)


class _Unheld:
    """A setting the engine does not take (what the engine did before full float32)."""

    def held(self):
        return nullcontext()


def test_a_classifier_trained_on_the_gpu_is_read_on_either_device(digits_split):
    X_train, y_train, X_test, y_test = digits_split
    clf = CNNClassifier(lr=0.01, batch_size=64, max_epochs=10, random_state=0, verbose=0,
                        device="cuda").fit(X_train, y_train)
    assert next(clf.module_.parameters()).is_cuda
    assert clf.score(X_test, y_test) > 0.85
    on_gpu = GradientMetricTransformer(clf, device="cuda").fit(X_test)
    on_cpu = GradientMetricTransformer(clf, device="cpu").fit(X_test)
    assert_features_close(on_gpu.transform(X_test), on_cpu.transform(X_test),
                          on_gpu.get_feature_names_out())
    assert next(clf.module_.parameters()).is_cuda   # the user's network was not moved


def test_chunk_sizes_and_a_dataset_give_the_same_features(digits_split):
    X = digits_split[2][:200]
    module = randomized(PaperCNN(), seed=6)
    big = GradientMetricTransformer(module, device="cuda", batch_size=4096).fit(X)
    names = big.get_feature_names_out()
    expected = big.transform(X)
    small = GradientMetricTransformer(module, device="cuda", batch_size=7).fit(X).transform(X)
    assert_features_close(small, expected, names)
    dataset = TensorDataset(torch.from_numpy(X), torch.zeros(len(X), dtype=torch.long))
    from_dataset = GradientMetricTransformer(module, device="cuda", batch_size=64).fit(dataset)
    assert_features_close(from_dataset.transform(dataset), expected, names)
    assert not any(p.is_cuda for p in module.parameters())


def test_gradnorm_on_the_gpu_equals_the_cpu(fitted_net, digits_split):
    X = digits_split[2][:100]
    gpu = gradnorm_score(fitted_net, X, device="cuda")
    cpu = gradnorm_score(fitted_net, X, device="cpu")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4)


def test_one_vs_all_and_uqgan_train_on_the_gpu(digits):
    X, y = digits
    keep = np.flatnonzero(y < 3)
    X, y = X[keep[:300]], y[keep[:300]]
    ova = OneVsAllClassifier(max_epochs=3, random_state=0, verbose=0, device="cuda").fit(X, y)
    uqgan = UQGANClassifier(cae_epochs=2, iterations=4, batch_size=32, random_state=0,
                            verbose=False, device="cuda").fit(X, y)
    for clf in (ova, uqgan):
        P = clf.predict_proba(X[:50])
        assert isinstance(P, np.ndarray) and P.shape == (50, 3)
        assert np.isfinite(P).all() and ((P >= 0) & (P <= 1)).all()
    # trained on the GPU, kept on the CPU between calls (a fitted UQGAN unpickles anywhere)
    assert not next(uqgan.classifier_.parameters()).is_cuda


def test_the_reproduction_runs_on_the_gpu(tmp_path):
    config = ReproduceConfig(data="digits", runs=1, out=str(tmp_path), epochs=2, ood_size=60,
                             device="cuda")
    run_protocol(config, log=lambda message: None)
    assert (tmp_path / "tables.md").is_file()
    assert '"device": "cuda"' in (tmp_path / "config.json").read_text()
