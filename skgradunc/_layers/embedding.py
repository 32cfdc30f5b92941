"""nn.Embedding: a sample's gradient touches only the rows it looks up, kept sparse."""

from torch import nn

from ._forms import Rows
from ._registry import LayerRule, register_rule


@register_rule(nn.Embedding, torch_only=True)
class EmbeddingRule(LayerRule):
    def applies(self, layer):
        # max_norm renormalises the weight in the forward; scale_grad_by_freq couples the
        # samples of a batch (the layer-local fallback takes it, one sample at a time)
        return layer.max_norm is None and not layer.scale_grad_by_freq

    def local_ok(self, layer):
        # max_norm renormalises the weight in place in the forward: whole-network paths
        return layer.max_norm is None

    def gradients(self, layer, index, grad_out, tensors):
        """The output gradients of a sample's positions added up per distinct index (the
        padding index's row stays zero), in at most min(positions, num_embeddings)
        slots."""
        n, dim = index.shape[0], grad_out.shape[-1]
        index = index.reshape(n, -1)
        grad_out = grad_out.reshape(n, -1, dim)
        if layer.padding_idx is not None:
            grad_out = grad_out.masked_fill((index == layer.padding_idx)[:, :, None], 0)
        index, order = index.sort(dim=1)
        grad_out = grad_out.gather(1, order[:, :, None].expand(-1, -1, dim))
        slot = index.new_zeros(index.shape)
        slot[:, 1:] = (index[:, 1:] != index[:, :-1]).cumsum(dim=1)   # distinct -> slot
        slots = min(index.shape[1], layer.num_embeddings)
        rows = grad_out.new_zeros(n, slots, dim).scatter_add_(
            1, slot[:, :, None].expand(-1, -1, dim), grad_out)
        # unused slots point at row 0 with a zero gradient: harmless when made dense
        values = index.new_zeros(n, slots).scatter_(1, slot, index)
        return {"weight": Rows(rows, values, layer.num_embeddings)}

    def bytes_per_sample(self, layer, index, grad_out):
        return (grad_out.element_size() * 3 * min(index[0].numel(), layer.num_embeddings)
                * layer.embedding_dim)
