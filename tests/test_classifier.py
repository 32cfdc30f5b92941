import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from skgradunc import CNNClassifier, TrainingDivergedError
from skgradunc.classifier import plateau_score
from skgradunc.training import fit_with_recovery


def small_net(**kwargs):
    params = dict(lr=0.01, max_epochs=2, random_state=0, verbose=0)
    params.update(kwargs)
    return CNNClassifier(**params)


# -- the paper's recipe as defaults ----------------------------------------------------------
def test_defaults_are_the_paper_recipe():
    net = CNNClassifier()
    assert (net.lr, net.batch_size, net.get_params()["device"]) == (0.1, 256, "auto")
    assert isinstance(net.criterion(), torch.nn.CrossEntropyLoss)
    net.initialize()
    opt = net.optimizer_
    assert isinstance(opt, torch.optim.SGD)
    decay = {p: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in net.module_.named_parameters():
        assert decay[p] == (0.0 if name.endswith("bias") else 2e-3), name
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    scheduler = dict(net.callbacks_)["lr_scheduler"]
    assert scheduler.monitor is plateau_score
    assert scheduler.kwargs == {"mode": "max", "factor": 0.1, "patience": 3, "min_lr": 1e-3}


def test_one_step_equals_keras_l2_regulariser(digits_split):
    """SGD with our param groups == gradient of CE + 1e-3 * sum(kernel**2), biases free."""
    X, y = digits_split[0][:64], digits_split[1][:64]
    net = CNNClassifier(lr=0.1, module__dropout=0.0, optimizer__momentum=0.0, verbose=0,
                        random_state=0, device="cpu")   # the float64 check below is on the CPU
    net.input_shape_, net.n_classes_ = X.shape[1:], 10
    net.initialize()
    with torch.no_grad():
        for p in net.module_.parameters():  # non-zero biases so that decaying them would show
            p.add_(0.05 * torch.randn_like(p))
    ref = {k: v.detach().clone().double().requires_grad_() for k, v in
           net.module_.named_parameters()}
    net.train_step((torch.from_numpy(X), torch.from_numpy(y)))

    x64 = torch.from_numpy(X).double()
    h = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(
        x64, ref["conv1.weight"], ref["conv1.bias"], padding=1), 0.1)
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(
        h, ref["conv2.weight"], ref["conv2.bias"], padding=1), 0.1)
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.nn.functional.conv2d(h, ref["conv3.weight"], ref["conv3.bias"], padding=1)
    logits = h.flatten(1) @ ref["dense.weight"].T + ref["dense.bias"]
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss = loss + 1e-3 * sum((w ** 2).sum() for k, w in ref.items() if k.endswith("weight"))
    grads = torch.autograd.grad(loss, list(ref.values()))
    for (name, p), g in zip(net.module_.named_parameters(), grads):
        expected = ref[name].detach() - 0.1 * g
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-4, atol=1e-6,
                                   msg=name)


# -- fit / predict -----------------------------------------------------------------------------
def test_fit_predict_and_proba(fitted_net, digits_split):
    _, _, X_test, y_test = digits_split
    proba = fitted_net.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    pred = fitted_net.predict(X_test)
    np.testing.assert_array_equal(pred, proba.argmax(1))
    assert np.array_equal(fitted_net.classes_, np.arange(10))
    assert fitted_net.input_shape_ == (1, 28, 28)
    assert np.mean(pred == y_test) > 0.8  # 8 epochs on 600 digits learn well beyond chance


def test_module_shape_is_inferred_from_data():
    X = np.random.rand(40, 3, 16, 12).astype(np.float32)
    y = np.arange(40) % 4
    net = small_net(max_epochs=1, train_split=None).fit(X, y)
    assert net.module_.input_shape == (3, 16, 12)
    assert net.module_.dense.out_features == 4
    # and explicit module__ parameters win over inference
    net = small_net(max_epochs=1, train_split=None, module__n_classes=6).fit(X, y)
    assert net.module_.dense.out_features == 6 and len(net.classes_) == 6


def test_random_state_makes_training_reproducible_and_leaves_global_rng_alone(digits_split):
    X, y = digits_split[0][:200], digits_split[1][:200]
    before = torch.get_rng_state()
    # bit for bit on the CPU; on a GPU cuDNN's backward kernels are not deterministic
    a, b = small_net(device="cpu").fit(X, y), small_net(device="cpu").fit(X, y)
    assert torch.equal(torch.get_rng_state(), before)
    for pa, pb in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(pa, pb)
    c = small_net(random_state=1, device="cpu").fit(X, y)
    assert not torch.equal(a.module_.conv1.weight, c.module_.conv1.weight)


def test_device_auto_resolves_but_stays_auto_as_parameter():
    net = CNNClassifier()
    assert net.get_params()["device"] == "auto"
    assert net.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert clone(net).get_params()["device"] == "auto"
    assert CNNClassifier(device="cpu").device == "cpu"


# -- sklearn machinery -------------------------------------------------------------------------
def test_clone_keeps_every_hyperparameter_and_drops_weights(fitted_net):
    copy = clone(fitted_net)
    assert not hasattr(copy, "module_")
    original = fitted_net.get_params(deep=False)
    for key, value in copy.get_params(deep=False).items():
        if key == "train_split":  # deep-copied object
            assert type(value) is type(original[key]) and vars(value) == vars(original[key])
            continue
        assert value == original[key], key
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((1, 1, 28, 28), np.float32))


def test_pickle_round_trip_predicts_identically(fitted_net, digits_split):
    X_test = digits_split[2]
    loaded = pickle.loads(pickle.dumps(fitted_net))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted_net.predict_proba(X_test))
    assert loaded.get_params()["device"] == "auto" and loaded.input_shape_ == (1, 28, 28)


def test_grid_search_over_lr_and_module_parameters(digits_split):
    X, y = digits_split[0][:240], digits_split[1][:240]
    search = GridSearchCV(small_net(max_epochs=2),
                          {"lr": [0.01, 0.03], "module__padding": ["same", "valid"]},
                          cv=2, refit=True).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.module_.conv1.padding == search.best_params_["module__padding"]
    assert search.predict(digits_split[2]).shape == (len(digits_split[2]),)


def test_training_without_validation_split_watches_the_training_loss(digits_split):
    X, y = digits_split[0][:100], digits_split[1][:100]
    net = small_net(max_epochs=3, train_split=None, lr_patience=0).fit(X, y)
    assert "valid_acc" not in net.history[-1]
    assert plateau_score(net) == -net.history[-1, "train_loss"]


def test_set_params_reaches_module_and_scheduler():
    net = small_net(max_epochs=1, train_split=None)
    net.set_params(module__dropout=0.5, callbacks__lr_scheduler__patience=7)
    X = np.random.rand(20, 1, 28, 28).astype(np.float32)
    net.fit(X, np.arange(20) % 2)
    assert net.module_.dropout.p == 0.5
    assert dict(net.callbacks_)["lr_scheduler"].kwargs["patience"] == 7


# -- input conventions -------------------------------------------------------------------------
def test_uint8_images_are_scaled_by_1_over_255(fitted_net, digits_split):
    X = digits_split[2][:20]
    as_uint8 = np.round(X * 255).astype(np.uint8)
    np.testing.assert_allclose(fitted_net.predict_proba(as_uint8),
                               fitted_net.predict_proba(as_uint8.astype(np.float32) / 255),
                               rtol=1e-6)


def test_3d_float64_and_flat_inputs_are_converted(fitted_net, digits_split):
    X = digits_split[2][:20]
    expected = fitted_net.predict_proba(X)
    np.testing.assert_allclose(fitted_net.predict_proba(X[:, 0]), expected, rtol=1e-6)
    np.testing.assert_allclose(fitted_net.predict_proba(X.astype(np.float64)), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(fitted_net.predict_proba(X.reshape(20, -1)), expected, rtol=1e-6)
    np.testing.assert_allclose(fitted_net.predict_proba(torch.from_numpy(X)), expected, rtol=1e-6)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make_X, error, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), ValueError,
     "NaN or infinity in 1 of"),
    (lambda X: np.full_like(X, np.inf), ValueError, "NaN or infinity"),
    (lambda X: X[:, :, :20, :20], ValueError, r"shape \(1, 20, 20\).*expects \(1, 28, 28\)"),
    (lambda X: np.repeat(X, 3, axis=1), ValueError, r"\(3, 28, 28\)"),
    (lambda X: X[:0], ValueError, "empty"),
    (lambda X: X[None], ValueError, "5-D"),
    (lambda X: X.astype(np.int32), TypeError, "dtype int32"),
    (lambda X: X.reshape(len(X), -1)[:, :100], ValueError, "100 features"),
])
def test_bad_images_are_refused_clearly(fitted_net, digits_split, make_X, error, match):
    with pytest.raises(error, match=match):
        fitted_net.predict(make_X(digits_split[2][:10]))


@pytest.mark.parametrize("y, error, match", [
    (lambda y: y + 0.5, ValueError, "non-integer floats"),
    (lambda y: y.astype(str), TypeError, "LabelEncoder"),
    (lambda y: y - 5, ValueError, "negative"),
    (lambda y: y[:-1], ValueError, "labels but X has"),
    (lambda y: np.zeros_like(y), ValueError, "single class"),
    (lambda y: np.stack([y, y], 1), ValueError, "1-D"),
])
def test_bad_labels_are_refused_clearly(digits_split, y, error, match):
    X, y_train = digits_split[0][:50], digits_split[1][:50]
    with pytest.raises(error, match=match):
        small_net().fit(X, y(y_train))


def test_integral_float_labels_are_accepted(digits_split):
    X, y = digits_split[0][:50], digits_split[1][:50]
    net = small_net(max_epochs=1, train_split=None).fit(X, y.astype(np.float64))
    assert net.predict(X).dtype.kind == "i"


def test_label_beyond_module_classes_is_refused(digits_split):
    X, y = digits_split[0][:50], digits_split[1][:50]
    with pytest.raises(ValueError, match="only 5 classes"):
        small_net(module__n_classes=5).fit(X, y)


def test_unfitted_net_refuses_to_predict():
    with pytest.raises(NotFittedError):
        CNNClassifier().predict(np.zeros((1, 1, 28, 28), np.float32))


def test_image_too_small_for_the_network():
    X = np.random.rand(10, 1, 3, 3).astype(np.float32)
    with pytest.raises(ValueError, match="too small"):
        small_net().fit(X, np.arange(10) % 2)


# -- divergence --------------------------------------------------------------------------------
def test_divergence_is_detected_not_returned(digits_split):
    X, y = digits_split[0][:300], digits_split[1][:300]
    with pytest.raises(TrainingDivergedError, match="diverged.*learning rate 1000"):
        small_net(lr=1000.0, max_epochs=3).fit(X, y)


def test_fit_with_recovery_lowers_the_rate_and_changes_the_seed(digits_split):
    X, y = digits_split[0][:300], digits_split[1][:300]
    messages = []
    template = small_net(lr=1000.0, max_epochs=3, random_state=5)
    fitted, attempts = fit_with_recovery(template, X, y, retries=1, lr_factor=1e-5,
                                         log=messages.append)
    assert [a["diverged"] for a in attempts] == [True, False]
    assert attempts[1]["lr"] == pytest.approx(0.01) and attempts[1]["random_state"] == 6
    assert fitted.lr == pytest.approx(0.01) and template.lr == 1000.0  # caller's net untouched
    assert not hasattr(template, "module_")
    assert "retrying with lr=0.01" in messages[0]
    assert all(torch.isfinite(p).all() for p in fitted.module_.parameters())


def test_fit_with_recovery_steps_the_seed_by_seed_step(digits_split):
    """The reproduction's retries keep the rate and take seeds no run uses."""
    X, y = digits_split[0][:300], digits_split[1][:300]
    seeds = []
    original = CNNClassifier.fit

    def recording(self, *args, **kwargs):
        seeds.append((self.random_state, self.lr))
        return original(self, *args, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CNNClassifier, "fit", recording)
        with pytest.raises(TrainingDivergedError):
            fit_with_recovery(small_net(lr=1000.0, max_epochs=3, random_state=3), X, y,
                              retries=2, lr_factor=1.0, seed_step=1000)
    assert seeds == [(3, 1000.0), (1003, 1000.0), (2003, 1000.0)]
    with pytest.raises(ValueError, match="seed_step"):
        fit_with_recovery(small_net(), X, y, seed_step=0)
    # torch reads seeds modulo 2**32: such a step would redraw the same network
    with pytest.raises(ValueError, match="modulo 2\\*\\*32"):
        fit_with_recovery(small_net(), X, y, seed_step=2 ** 32)


def test_fit_with_recovery_gives_up_loudly(digits_split):
    X, y = digits_split[0][:300], digits_split[1][:300]
    with pytest.raises(TrainingDivergedError, match="all 2 training attempts diverged"):
        fit_with_recovery(small_net(lr=1000.0, max_epochs=3), X, y, retries=1, lr_factor=1.0)


# -- hyper-parameters are validated in fit, not __init__ (issue 10) ---------------------------
@pytest.mark.parametrize("param, value, expected", [
    ("lr", float("nan"), "a positive finite number"), ("lr", float("inf"), "positive finite"),
    ("lr", 0.0, "positive finite"), ("lr", -0.1, "positive finite"),
    ("lr", "0.1", "positive finite"), ("lr", True, "positive finite"),
    ("max_epochs", 0, "a positive integer"), ("max_epochs", 2.5, "positive integer"),
    ("batch_size", 0, "a positive integer or -1"), ("batch_size", -2, "positive integer or -1"),
    ("batch_size", 8.0, "positive integer or -1"),
    ("lr_patience", -1, "a non-negative integer"), ("lr_patience", 1.5, "non-negative integer"),
    ("min_lr", -1e-3, "a non-negative finite number"), ("min_lr", float("nan"), "finite"),
    ("random_state", 1.5, "None or an integer"),
    ("random_state", np.random.RandomState(0), "None or an integer"),
])
def test_bad_hyperparameters_are_refused_in_fit(param, value, expected):
    net = small_net(**{param: value})           # __init__ only stores (scikit-learn's rule)
    assert net.get_params()[param] is value
    X = np.random.rand(20, 1, 8, 8).astype(np.float32)
    with pytest.raises(ValueError, match=f"{param} must be .*{expected}") as info:
        net.fit(X, np.arange(20) % 2)
    assert repr(value) in str(info.value)
    assert not hasattr(net, "module_")              # refused before training


def test_batch_size_minus_one_is_skorchs_whole_data_set():
    X = np.random.rand(10, 1, 8, 8).astype(np.float32)
    net = small_net(batch_size=-1, max_epochs=1, train_split=None).fit(X, np.arange(10) % 2)
    assert net.history[-1, "batches", -1, "train_batch_size"] == 10


def test_fit_with_recovery_refuses_a_bad_lr_before_training():
    from sklearn.base import BaseEstimator

    class Estimator(BaseEstimator):
        def __init__(self, lr=0.1, random_state=None):
            self.lr, self.random_state = lr, random_state

        def fit(self, X, y):
            raise AssertionError("fit_with_recovery trained with a bad lr")

    for lr in (float("nan"), float("inf"), 0.0, -1.0, "fast"):
        with pytest.raises(ValueError, match=f"lr must be a positive finite number, got "
                                             f"{lr!r}"):
            fit_with_recovery(Estimator(lr=lr), None, None)


# -- too few samples for the internal validation split (issue 10) -----------------------------
@pytest.mark.parametrize("n, n_classes, detail", [
    (2, 2, "2 samples of 2 classes, at most 1 of a class"),
    (6, 3, "6 samples of 3 classes, at most 2 of a class"),
    (20, 10, "20 samples of 10 classes, at most 2 of a class"),
])
def test_too_few_samples_for_the_validation_split_say_so(n, n_classes, detail):
    X = np.random.rand(n, 1, 8, 8).astype(np.float32)
    y = np.arange(n) % n_classes
    with pytest.raises(ValueError, match="validation split") as info:
        small_net(max_epochs=1).fit(X, y)
    message = str(info.value)
    assert detail in message
    assert "ValidSplit(5, stratified=True)" in message and "at least 5 samples" in message
    assert "train_split=None" in message
    # and the advice works
    assert small_net(max_epochs=1, train_split=None).fit(X, y).predict(X).shape == (n,)


def test_a_float_validation_split_too_large_for_the_data_says_so():
    from skorch.dataset import ValidSplit
    X = np.random.rand(6, 1, 8, 8).astype(np.float32)
    with pytest.raises(ValueError, match=r"6 samples of 3 classes.*"
                                         r"ValidSplit\(0.2, stratified=True\).*train_split=None"):
        small_net(max_epochs=1, train_split=ValidSplit(0.2, stratified=True)).fit(
            X, np.arange(6) % 3)
