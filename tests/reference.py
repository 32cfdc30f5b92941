"""Independent reference: a per-sample loop of torch.autograd.grad in float64, with
numpy/scipy statistics. Shares no code with skgradunc's engine."""

import copy

import numpy as np
import scipy.stats
import torch


def reference_loss(logits, target, temperature=1.0):
    """The losses written out independently of skgradunc._engine."""
    q = logits.shape[-1]
    if target == "predicted":
        return torch.nn.functional.cross_entropy(logits, logits.argmax(-1))
    if target == "all_ones":   # BCE of the softmax outputs against ones (pytorch-ood's reading)
        return torch.nn.functional.binary_cross_entropy(
            torch.softmax(logits, -1), torch.ones_like(logits), reduction="sum")
    if target == "all_ones_sigmoid":
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.ones_like(logits), reduction="sum")
    if target == "uniform":  # KL(uniform || softmax(z / T))
        uniform = torch.full_like(logits, 1.0 / q)
        return torch.nn.functional.kl_div(torch.log_softmax(logits / temperature, -1), uniform,
                                          reduction="sum")
    raise ValueError(target)


def reference_statistics(g):
    if not np.any(g != g.flat[0]):   # the documented convention: a constant has 0 skew, kurtosis
        return {"l1": np.abs(g).sum(), "l2": np.linalg.norm(g), "min": g.min(), "max": g.max(),
                "mean": g.mean(), "std": 0.0, "skew": 0.0, "kurtosis": 0.0}
    return {
        "l1": np.abs(g).sum(), "l2": np.linalg.norm(g), "min": g.min(), "max": g.max(),
        "mean": g.mean(), "std": g.std(ddof=0),
        "skew": scipy.stats.skew(g, bias=True),
        "kurtosis": scipy.stats.kurtosis(g, fisher=True, bias=True),
    }


def reference_features(module, X, target, groups, statistics, softmax=("entropy", "max_prob"),
                       temperature=1.0):
    """DataFrame-like dict: feature name -> float64 array over samples."""
    m64 = copy.deepcopy(module).double().eval()
    params = dict(m64.named_parameters())
    rows = []
    for x in torch.as_tensor(X, dtype=torch.float64):
        logits = m64(x[None])
        loss = reference_loss(logits, target, temperature)
        # a weight the forward does not reach (a head used in training only) has gradient 0
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()),
                                                     allow_unused=True, materialize_grads=True)))
        grads = {k: v.detach().numpy().ravel() for k, v in grads.items()}
        row = {}
        for group, names in list(groups.items()) + [("network", list(params))]:
            g = np.concatenate([grads[n] for n in names])
            stats = reference_statistics(g)
            row.update({f"{group}__{s}": stats[s] for s in statistics})
            row[f"{group}__rms"] = np.sqrt(np.mean(g ** 2))
        p = torch.softmax(logits.detach(), -1).numpy().ravel()
        if "entropy" in softmax:
            row["softmax__entropy"] = scipy.stats.entropy(p) / np.log(len(p))
        if "max_prob" in softmax:
            row["softmax__max_prob"] = p.max()
        rows.append(row)
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def assert_matches_reference(names, features, reference, rtol=1e-4):
    """Relative error <= rtol. Quantities that are zero by symmetry (the mean of a
    layer whose gradient sums to zero) are compared relative to the group's RMS;
    skewness and kurtosis, dimensionless and O(1), may cross zero, so they also get
    an absolute floor of rtol."""
    for j, name in enumerate(names):
        ours, ref = features[:, j], reference[name]
        group, stat = name.split("__")
        if stat == "mean":
            scale = reference[f"{group}__rms"]
            np.testing.assert_array_less(np.abs(ours - ref), rtol * scale + 1e-300,
                                         err_msg=name)
        elif stat in ("skew", "kurtosis"):
            np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol, err_msg=name)
        else:
            np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-12, err_msg=name)
