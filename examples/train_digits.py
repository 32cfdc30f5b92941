"""
Train the paper's CNN and look at its softmax confidence
========================================================

Train the paper's CNN on the embedded digits and look at its softmax confidence.

Run: python examples/train_digits.py
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

import skgradunc as sgu

X, y = sgu.datasets.load_digits28(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0)

# The paper's recipe with lr 0.01: the paper's 0.1 diverges on 1,347 images.
net = sgu.CNNClassifier(lr=0.01, max_epochs=30, random_state=0)
net.fit(X_train, y_train)

proba = net.predict_proba(X_test)
correct = proba.argmax(1) == y_test
noise = sgu.datasets.make_noise(200, kind="uniform", shape=X.shape[1:], random_state=0)
print(f"test accuracy              {correct.mean():.3f}")
print(f"mean max-softmax, correct   {proba.max(1)[correct].mean():.3f}")
print(f"mean max-softmax, wrong     {proba.max(1)[~correct].mean():.3f}")
print(f"mean max-softmax, noise     {net.predict_proba(noise).max(1).mean():.3f}")
print(f"final learning rate         {net.optimizer_.param_groups[0]['lr']:g}")

# %%
# The softmax maximum is high for most correct predictions, lower for the wrong ones, and
# not low enough for noise: the gap the gradient metrics of the other examples try to close.
fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.hist([proba.max(1)[correct], proba.max(1)[~correct],
         net.predict_proba(noise).max(1)], bins=np.linspace(0, 1, 21), density=True,
        label=["correct test digits", "wrong test digits", "uniform noise"])
ax.set_xlabel("maximum softmax probability")
ax.set_ylabel("density")
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()
