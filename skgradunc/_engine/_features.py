"""A chunk's feature rows from its summaries and class scores: groups and the network
combined exactly, the statistics asked for, the softmax features."""

import torch

from .._outputs import check_scores, class_logits
from ..statistics import combine, finalize, softmax_features

__all__ = ["FeatureAssembly", "GroupSummaries", "group_members"]


class GroupSummaries:
    """Summaries (groups [+ network], n, 9) of the plan's groups themselves, in the order
    of :func:`group_members` (a strategy that summarises whole groups at once)."""

    def __init__(self, summaries):
        self.summaries = summaries


def group_members(plan):
    """The parameters of each group, then of the network when it is asked for."""
    members = [list(names) for _, names in plan.groups]
    if plan.include_network:
        network = set(plan.network)
        members.append([p for p in plan.parameters if p in network])
    return members


class FeatureAssembly:
    """Assembles the rows of one plan; the group membership is made once per device."""

    def __init__(self, plan):
        self.plan = plan
        self._rows = [[p in set(names) for p in plan.parameters] for names in group_members(plan)]
        self._mask = None

    def _membership(self, device):
        """(groups [+ network], parameters) mask of which parameters form each group."""
        if self._mask is None or self._mask.device != device:
            self._mask = torch.tensor(self._rows, dtype=torch.bool, device=device)
        return self._mask

    def __call__(self, summaries, scores, offset=0):
        """Features (n, n_features): ``summaries`` {parameter: (n, 9)} or
        :class:`GroupSummaries`, ``scores`` the module's class scores of the chunk,
        checked (NaN, probabilities that are not) before use; ``offset``: the chunk's first
        sample, for the errors."""
        plan = self.plan
        check_scores(scores, plan.output, plan.output_guessed, offset, sigmoids=plan.sigmoids)
        columns = []
        if plan.statistics:
            if isinstance(summaries, GroupSummaries):
                groups = summaries.summaries
            else:
                per_parameter = torch.stack([summaries[name] for name in plan.parameters])
                groups = combine(per_parameter, self._membership(per_parameter.device))
            stats = finalize(groups, plan.statistics)                    # (groups, n, k)
            columns.append(stats.transpose(0, 1).flatten(1))
        if plan.softmax:
            logits = class_logits(scores, plan.output, len(scores))
            columns.append(softmax_features(logits.detach().to(torch.float64), plan.softmax))
        return torch.cat(columns, dim=1)
