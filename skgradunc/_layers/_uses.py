"""How often each weight's gradient is taken in a forward: the edges of the autograd
graph into it. The engine checks with it that per-layer gradients miss no use; a rule
whose layer may use a weight several times in one call counts them with it."""

__all__ = ["UnsupportedNetworkError", "gradient_uses"]


class UnsupportedNetworkError(RuntimeError):
    """Per-sample gradients of this network cannot be computed (the network itself runs)."""


def gradient_uses(scores, leaves, module):
    """How often each weight's gradient is taken: the edges of ``scores``' autograd graph
    into each leaf of ``leaves`` (name -> tensor), by name. Every use that adds to the
    gradient is an edge, whatever computed it (a torch function, a custom
    autograd.Function, an extension); a use that adds nothing (a metadata read, under
    no_grad) is none. A parameter of ``module`` reached as itself, not as the leaf
    functional_call swapped in (an alias in a plain list or dict), is refused: its
    gradient would be missing."""
    if getattr(scores, "grad_fn", None) is None:
        return {}
    names = {id(tensor): name for name, tensor in leaves.items()}
    originals = {id(p): name for name, p in module.named_parameters(remove_duplicate=False)}
    counts, seen, stack = {}, set(), [scores.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for following, _ in node.next_functions:
            variable = getattr(following, "variable", None)   # AccumulateGrad: a leaf
            if variable is None:
                stack.append(following)
            elif id(variable) in names:
                counts[names[id(variable)]] = counts.get(names[id(variable)], 0) + 1
            elif id(variable) in originals:
                raise UnsupportedNetworkError(
                    f"the forward uses the parameter {originals[id(variable)]!r} through a "
                    "reference that torch.func.functional_call cannot swap (an alias kept in "
                    "a plain list, dict or closure), so its gradient would be missing; use "
                    "the registered attribute (or register the alias as a module)")
    return counts
