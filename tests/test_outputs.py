"""What a network returns: logits, probabilities, log-probabilities, one logit of two
classes, or something that cannot be class scores (skgradunc/_outputs.py)."""

import numpy as np
import pytest
import torch
from skorch import NeuralNetBinaryClassifier, NeuralNetClassifier

from skgradunc import GradientMetricTransformer, correctness_target

from tolerances import assert_features_close

nn = torch.nn


def _body(seed=0, classes=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, classes))


class Ending(nn.Module):
    """The same body, ending in a softmax, a log-softmax, a tuple, a squeeze..."""

    def __init__(self, body, end):
        super().__init__()
        self.body, self.end = body, end

    def forward(self, x):
        return self.end(self.body(x))


X = np.random.RandomState(0).randn(9, 5).astype(np.float32)


def features(module, **kwargs):
    grad = GradientMetricTransformer(module, batch_size=4, **kwargs)
    return grad.fit_transform(X), list(grad.get_feature_names_out())


def _same(z):
    return z


@pytest.fixture
def logits_features():
    return features(Ending(_body(), _same))


def test_probabilities_are_refused_as_logits_and_read_when_stated(logits_features):
    """Before: a softmax output read as logits gave silently wrong features."""
    expected, names = logits_features
    softmax = Ending(_body(), lambda z: torch.softmax(z, dim=1))
    with pytest.raises(ValueError, match="look like probabilities.*output='probabilities'"):
        features(softmax)
    got, got_names = features(softmax, output="probabilities")
    assert got_names == names
    assert_features_close(got, expected, names)


def test_log_probabilities_give_the_logits_features(logits_features):
    """log p differs from the logits by a per-row constant: same gradients and softmax."""
    expected, names = logits_features
    log_softmax = Ending(_body(), lambda z: torch.log_softmax(z, dim=1))
    for output in ("auto", "log_probabilities"):
        assert_features_close(features(log_softmax, output=output)[0], expected, names)


def test_skorch_criterion_says_what_the_module_returns(logits_features):
    """skorch's NeuralNetClassifier with NLLLoss (its default) expects probabilities."""
    expected, names = logits_features
    softmax = Ending(_body(), lambda z: torch.softmax(z, dim=1))
    net = NeuralNetClassifier(softmax, criterion=nn.NLLLoss, max_epochs=0).initialize()
    grad = GradientMetricTransformer(net, batch_size=4).fit(X)
    assert grad.output_ == "probabilities"
    assert_features_close(grad.transform(X), expected, names)
    net = NeuralNetClassifier(_body(), criterion=nn.CrossEntropyLoss).initialize()
    assert GradientMetricTransformer(net).fit(X).output_ == "logits"


class TwoClasses(nn.Module):
    """One logit s written out as the two-class logits [0, s]."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        s = self.body(x)
        return torch.cat([torch.zeros_like(s), s], dim=1)


@pytest.mark.parametrize("squeeze", [False, True])
def test_one_logit_is_the_two_class_case(squeeze):
    """Before: a BCEWithLogits-style network gave all-zero gradients and NaN entropy."""
    one = _body(classes=1)
    module = Ending(one, lambda s: s.squeeze(1) if squeeze else s)
    got, names = features(module, output="logits")
    expected, expected_names = features(TwoClasses(one))
    assert names == expected_names
    assert_features_close(got, expected, names)
    assert np.isfinite(got).all() and (got[:, names.index("network__l2")] > 0).all()
    # as skorch's binary classifier reads it
    net = NeuralNetBinaryClassifier(module, max_epochs=0).initialize()
    assert_features_close(GradientMetricTransformer(net, batch_size=4).fit_transform(X),
                          expected, names)
    # correctness: class 1 where the logit is positive
    logit = one(torch.from_numpy(X)).detach().numpy().ravel()
    assert 0 < (logit > 0).mean() < 1
    np.testing.assert_array_equal(
        correctness_target(module, X, np.ones(len(X)), output="logits"), logit > 0)


def test_one_score_of_a_plain_module_is_not_guessed():
    """A logit or a probability? Reading a sigmoid's output as a logit gave network__l2
    0.236 instead of 0.899, and correctness_target all ones."""
    sigmoid = Ending(_body(classes=1), torch.sigmoid)
    with pytest.raises(ValueError, match="one score per sample .* output='probabilities'"):
        features(sigmoid)
    with pytest.raises(ValueError, match="one score per sample"):
        correctness_target(sigmoid, X, np.ones(len(X)))
    p = sigmoid(torch.from_numpy(X)).detach().numpy().ravel()
    assert 0 < (p > 0.5).mean() < 1
    np.testing.assert_array_equal(
        correctness_target(sigmoid, X, np.ones(len(X)), output="probabilities"), p > 0.5)


def test_one_probability_is_the_two_class_case():
    one = _body(classes=1)
    expected, names = features(TwoClasses(one))
    sigmoid = Ending(one, torch.sigmoid)
    assert_features_close(features(sigmoid, output="probabilities")[0], expected, names)
    log_sigmoid = Ending(one, nn.functional.logsigmoid)
    assert_features_close(features(log_sigmoid, output="log_probabilities")[0], expected,
                          names, rtol=1e-3)  # log(1 - p) from log p loses a few digits


def test_a_tuple_counts_by_its_first_element(logits_features):
    """skorch's convention for modules with several outputs."""
    expected, names = logits_features
    pair = Ending(_body(), lambda z: (z, z.sum()))
    assert_features_close(features(pair)[0], expected, names)


@pytest.mark.parametrize("end, match", [
    (lambda z: z[:, :, None].expand(-1, -1, 3), r"output has shape \(2, 4, 3\)"),
    (lambda z: {"logits": z}, "returned dict, not a tensor"),
    (lambda z: z.sum(), r"output has shape \(\)"),
    (lambda z: z[:1], r"returned 1 rows of class scores .* for 2 sample"),
])
def test_outputs_that_are_not_class_scores_are_refused_naming_them(end, match):
    """Before: 1-D/3-D/tuple outputs failed with a message blaming the input."""
    with pytest.raises(ValueError, match=match) as error:
        features(Ending(_body(), end))
    assert "could not process inputs" not in str(error.value)


def test_non_finite_outputs_name_the_sample():
    def poison(z):
        z = z.clone()
        z[z[:, 0] > z[:, 0].median()] = float("nan")
        return z
    module = Ending(_body(), poison)
    with pytest.raises(ValueError, match=r"NaN or infinity .* \(first: sample \d\)"):
        features(module)


def test_nllloss_outside_a_classifier_means_log_probabilities(logits_features):
    """Only skorch's NeuralNetClassifier takes the log of its module's output."""
    from skorch import NeuralNet
    expected, names = logits_features
    log_softmax = Ending(_body(), lambda z: torch.log_softmax(z, dim=1))
    net = NeuralNet(log_softmax, criterion=nn.NLLLoss).initialize()
    grad = GradientMetricTransformer(net, batch_size=4).fit(X)
    assert grad.output_ == "log_probabilities"
    assert_features_close(grad.transform(X), expected, names)


@pytest.mark.parametrize("end, classes", [(lambda z: torch.softmax(z, 1), 4),
                                          (lambda z: z.abs(), 1)])
def test_log_probabilities_that_are_not_are_refused(end, classes):
    """Before: a softmax or a positive logit declared as log-probabilities gave wrong
    features silently (max_prob 1.0 from log(tiny))."""
    with pytest.raises(ValueError, match="read as log-probabilities, but .* not "):
        features(Ending(_body(classes=classes), end), output="log_probabilities")


def test_probabilities_that_are_not_are_refused(logits_features):
    with pytest.raises(ValueError, match="read as probabilities, but those for sample 0"):
        features(_body(), output="probabilities")
    with pytest.raises(ValueError, match="unknown output"):
        features(_body(), output="softmax")
    with pytest.raises(ValueError, match="unknown output"):
        correctness_target(object(), X, np.zeros(len(X)), output="softmax")
    # log-probabilities declared as probabilities: the message says what they look like
    with pytest.raises(ValueError, match="pass output='log_probabilities'"):
        features(Ending(_body(), lambda z: torch.log_softmax(z, 1)), output="probabilities")
    with pytest.raises(ValueError, match="pass output='probabilities'"):
        features(Ending(_body(), lambda z: torch.softmax(z, 1)), output="log_probabilities")
    with pytest.raises(ValueError, match="all_ones_sigmoid.*logits"):
        features(Ending(_body(), lambda z: torch.softmax(z, 1)), output="probabilities",
                 target="all_ones_sigmoid")
    # the softmax reading of the all-ones label takes any output: the same features
    (read, names), (direct, _) = (
        features(Ending(_body(), lambda z: torch.softmax(z, 1)), output="probabilities",
                 target="all_ones"), features(_body(), target="all_ones"))
    assert_features_close(read, direct, names)


def test_output_changed_after_fit_needs_a_new_fit():
    softmax = Ending(_body(), lambda z: torch.softmax(z, dim=1))
    grad = GradientMetricTransformer(softmax, output="probabilities").fit(X)
    grad.set_params(output="logits")
    with pytest.raises(ValueError, match="changed since fit"):
        grad.transform(X)


def test_per_class_sigmoids_are_not_read_as_a_softmax(logits_features):
    """Issue 25: a BCE-trained network of several outputs (one-vs-all, multi-label) gave
    softmax features and softmax-target gradients without a word; refused unless the user
    states what the outputs are."""
    expected, names = logits_features
    for criterion in (nn.BCEWithLogitsLoss, nn.BCELoss):
        net = NeuralNetClassifier(_body(), criterion=criterion, max_epochs=0).initialize()
        with pytest.raises(ValueError, match=f"{criterion.__name__} reads each output as "
                                             "its own sigmoid: its 4 outputs are one-vs-all"):
            GradientMetricTransformer(net, batch_size=4).fit(X)
    # said explicitly: read as softmax logits, the same features as the plain module
    net = NeuralNetClassifier(_body(), criterion=nn.BCEWithLogitsLoss,
                              max_epochs=0).initialize()
    stated = GradientMetricTransformer(net, batch_size=4, output="logits").fit_transform(X)
    assert_features_close(stated, expected, names)


def test_the_advice_names_every_kind_the_outputs_could_be():
    """Issue 25: logits that happen to be negative, declared as probabilities, were said
    to be log-probabilities only."""
    negative = Ending(_body(), lambda z: z - z.abs().max() - 1)   # logits, all < 0
    with pytest.raises(ValueError, match="pass output='logits' if they are logits$"):
        features(negative, output="probabilities")
    log_softmax = Ending(_body(), lambda z: torch.log_softmax(z, 1))
    with pytest.raises(ValueError, match="pass output='log_probabilities' if they are "
                                         "log-probabilities, or output='logits' if they are "
                                         "logits$"):
        features(log_softmax, output="probabilities")
