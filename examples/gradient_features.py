"""
Gradient metrics, one feature at a time
=======================================

Gradient metrics of the paper's CNN on the embedded digits, one feature at a time.

Trains the CNN, computes all gradient features of the held-out digits and of uniform noise, and
prints how well each single feature separates correct from wrong predictions and digits from
noise (AUROC; the feature's sign is chosen so that higher means "more likely correct").

Run: python examples/gradient_features.py
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import skgradunc as sgu

X, y = sgu.datasets.load_digits28(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)
net = sgu.CNNClassifier(lr=0.01, max_epochs=30, random_state=0, verbose=0).fit(X_train, y_train)
noise = sgu.datasets.make_noise(200, kind="uniform", shape=X.shape[1:], random_state=0)

grad = sgu.GradientMetricTransformer(FrozenEstimator(net)).set_output(transform="pandas")
grad.fit(X_test)
digits, noisy = grad.transform(X_test), grad.transform(noise)
correct = net.predict(X_test) == y_test


def auroc(positive, negative):
    """AUROC with the direction that makes the feature a confidence."""
    scores = np.concatenate([positive, negative])
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    value = roc_auc_score(labels, scores)
    return max(value, 1 - value)


rows = {name: {"correct vs wrong": auroc(digits[name][correct], digits[name][~correct]),
               "correct vs noise": auroc(digits[name][correct], noisy[name])}
        for name in digits.columns}
table = pd.DataFrame(rows).T.sort_values("correct vs wrong", ascending=False)
print(f"test accuracy {correct.mean():.3f}; {(~correct).sum()} wrong predictions")
print(table.round(3).head(12).to_string())

# %%
# The twelve features that best separate correct from wrong predictions, and how the same
# features separate correct predictions from noise.
top = table.head(12).iloc[::-1]
fig, ax = plt.subplots(figsize=(6.4, 4.8))
positions = np.arange(len(top))
ax.barh(positions + 0.2, top["correct vs wrong"], height=0.4, label="correct vs wrong")
ax.barh(positions - 0.2, top["correct vs noise"], height=0.4, label="correct vs noise")
ax.set_yticks(positions, top.index)
ax.set_xlim(0.5, 1)
ax.set_xlabel("AUROC of the single feature")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
