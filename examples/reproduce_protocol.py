"""
One run of the paper's protocol with the public API
===================================================

One run of the paper's protocol with the public API (what ``skgradunc reproduce`` automates).

1. split the in-distribution data in the paper's proportions (60k : 20k : 200k);
2. train the paper's CNN on the training part;
3. gradient metrics + softmax features for validation, test and every unknown concept;
4. Table 1: threshold each single metric (direction learned on validation);
   Table 2: LASSO on all metrics; Table 3: the NN meta classifier with 200 known unknowns;
5. AUROC of "correct test prediction" against wrong ones and against each concept.

Run: python examples/reproduce_protocol.py
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator

import skgradunc as sgu
from skgradunc.metrics import auroc

rng = np.random.RandomState(0)
X, y = sgu.datasets.load_digits28(return_X_y=True)
order = rng.permutation(len(X))
n_train, n_val = round(len(X) * 60 / 280), round(len(X) * 20 / 280)
train, val, test = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]

net = sgu.CNNClassifier(lr=0.01, batch_size=64, max_epochs=60, random_state=0, verbose=0)
net.fit(X[train], y[train])
concepts = {"letters": sgu.datasets.load_letters28(20, random_state=0, return_X_y=True)[0],
            "natural images": sgu.datasets.load_natural28(500, random_state=0),
            "uniform noise": sgu.datasets.make_noise(500, random_state=1)}
known_noise = sgu.datasets.make_noise(200, random_state=2)      # known unknowns (Table 3)

grad = sgu.GradientMetricTransformer(FrozenEstimator(net)).set_output(transform="pandas")
grad.fit(X[val])
F_val, F_test = grad.transform(X[val]), grad.transform(X[test])
F_concepts = {name: grad.transform(images) for name, images in concepts.items()}
y_val = sgu.correctness_target(net, X[val], y[val])
y_test = sgu.correctness_target(net, X[test], y[test])
print(f"CNN test accuracy {y_test.mean():.3f}; {(y_val == 0).sum()} wrong validation "
      f"predictions for the meta classifiers to learn from")


def aurocs(confidence):
    """AUROC of correct test predictions against wrong ones and against each concept."""
    correct = confidence(F_test)[y_test == 1]
    negatives = {"wrong": confidence(F_test)[y_test == 0],
                 **{name: confidence(F) for name, F in F_concepts.items()}}
    return {name: auroc(np.r_[np.ones(len(correct)), np.zeros(len(neg))], np.r_[correct, neg])
            for name, neg in negatives.items()}


rows = {}
for label, column in [("softmax baseline", "softmax__max_prob"), ("entropy", "softmax__entropy"),
                      ("network L2 norm", "network__l2"), ("network minimum", "network__min")]:
    threshold = sgu.SingleMetricClassifier(column).fit(F_val, y_val)       # Table 1
    rows[label] = aurocs(lambda F, t=threshold: t.signed_feature(F))
metrics_only = [c for c in F_val.columns if c != "softmax__max_prob"]
lasso = sgu.MetaClassifier("lasso", random_state=0).fit(F_val[metrics_only], y_val)  # Table 2
rows["LASSO"] = aurocs(lambda F: lasso.predict_proba(F[metrics_only])[:, 1])
F_known = grad.transform(known_noise)[metrics_only]                            # Table 3
nn = sgu.MetaClassifier("nn", random_state=0).fit(
    pd.concat([F_val[metrics_only], F_known]), np.r_[y_val, np.zeros(len(F_known))])
rows["NN + 200 noise"] = aurocs(lambda F: nn.predict_proba(F[metrics_only])[:, 1])
print(pd.DataFrame(rows).T.round(3).to_string())

# %%
# The paper's Figure 2: one feature's distribution for correct and wrong test predictions and
# for each unknown concept (here the network-wide L2 norm of the gradient, on a log scale).
groups = {"correct": F_test["network__l2"][y_test == 1],
          "wrong": F_test["network__l2"][y_test == 0],
          **{name: F["network__l2"] for name, F in F_concepts.items()}}
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.violinplot([np.log10(v) for v in groups.values()], showmedians=True)
ax.set_xticks(range(1, len(groups) + 1), list(groups))
ax.set_ylabel("log10 network L2 norm of the gradient")
fig.tight_layout()

# %%
# Which features the LASSO (Table 2) keeps: its coefficients on standardised features, per
# layer and statistic (zero: dropped by the L1 penalty; positive: more likely correct).
coefficients = pd.Series(lasso.estimator_[-1].coef_.ravel(), index=metrics_only)
coefficients.index = pd.MultiIndex.from_tuples([tuple(c.rsplit("__", 1)) for c in metrics_only])
grid = coefficients.unstack()
fig, ax = plt.subplots(figsize=(8, 3.2))
bound = np.abs(grid.to_numpy(dtype=float)[~np.isnan(grid.to_numpy(dtype=float))]).max()
image = ax.imshow(grid.to_numpy(dtype=float), cmap="coolwarm", vmin=-bound, vmax=bound)
ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right")
ax.set_yticks(range(grid.shape[0]), grid.index)
fig.colorbar(image, ax=ax, label="LASSO coefficient")
fig.tight_layout()
plt.show()
