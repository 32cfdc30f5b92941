"""NAC-UE's reference code, vendored for the tests: the pure-torch pieces of the authors'
OpenOOD postprocessor, BierOne/ood_coverage at b00278098a8f4c629d785161c48605a5f837d563,
``openood/postprocessors/nac/coverage.py`` (``logspace``, ``Estimator``: update,
get_score, ood_test), ``instr_state.py`` (``kl_grad``) and ``utils.py`` (``sigmoid``,
``avg_pooling``), copied with the device handling removed and nothing else changed.

MIT License, Copyright (c) 2021 Jingkang Yang (the repository's LICENSE): Permission is
hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom
the Software is furnished to do so, subject to the following conditions: The above
copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY
OF ANY KIND.
"""

import numpy as np
import torch


def sigmoid(x, sig_alpha=1.0):
    return 1 / (1 + torch.exp(-sig_alpha * x))


def avg_pooling(hiddens):
    return hiddens.sum(dim=[2, 3])  # B, C, W, H


def kl_grad(b_state, outputs, retain_graph=False):
    logsoftmax = torch.nn.LogSoftmax(dim=-1)
    num_classes = outputs.shape[-1]
    targets = torch.ones_like(outputs) / num_classes
    loss = (torch.sum(-targets * logsoftmax(outputs), dim=-1))
    return torch.autograd.grad(loss.sum(), b_state, create_graph=False,
                               retain_graph=retain_graph)[0]


def logspace(base=10, num=100):
    num = int(num / 2)
    x = np.linspace(1, np.sqrt(base), num=num)
    x_l = np.emath.logn(base, x)
    x_r = (1 - x_l)[::-1]
    x = np.concatenate([x_l[:-1], x_r])
    x[-1] += 1e-2
    return torch.from_numpy(np.append(x, 1.2))


class Estimator(object):
    def __init__(self, neuron_num, M=1000, O=1):  # noqa: E741 (the authors' names)
        self.M, self.O, self.N = M, O, neuron_num
        self.thresh = logspace(1e3, M).view(M, -1).repeat(1, neuron_num)
        self.t_act = torch.zeros(M - 1, neuron_num)
        self.n_coverage = None

    def update(self, states):
        with torch.no_grad():
            b_act = (states.unsqueeze(1) >= self.thresh[:self.M - 1].unsqueeze(0)) & \
                    (states.unsqueeze(1) < self.thresh[1:self.M].unsqueeze(0))
            b_act = b_act.sum(dim=0)
            self.t_act += b_act

    def get_score(self, method="avg"):
        t_score = torch.min(self.t_act / self.O, torch.ones_like(self.t_act))
        coverage = (t_score.sum(dim=0)) / self.M
        if method == "avg":
            coverage = coverage.mean()
        self.n_coverage = t_score
        return coverage

    def ood_test(self, states, method="avg"):
        b_act = (states.unsqueeze(1) >= self.thresh[:self.M - 1].unsqueeze(0)) & \
                (states.unsqueeze(1) < self.thresh[1:self.M].unsqueeze(0))
        scores = (b_act * self.n_coverage.unsqueeze(0)).sum(dim=1)
        if method == "avg":
            scores = scores.mean(dim=1)
        return scores
