"""Operations on lists of tensors, multi-tensor or tensor by tensor (torch's ``foreach`` flag).

``TensorLists(True).add_(params, updates)`` is ``torch._foreach_add_(params, updates)``, one
launch for the whole list on CUDA; ``TensorLists(False).add_(params, updates)`` runs
``param.add_(update)`` for each pair. Any ``torch._foreach_<name>`` whose per-tensor form is
the method ``Tensor.<name>`` works: list arguments are taken pairwise, others (numbers, 0-dim
tensors) are passed to every call; in-place names (ending in ``_``) return None, the others
a list.
"""
from __future__ import annotations

import torch


class TensorLists:
    """``torch._foreach_<name>`` (``foreach=True``) or its per-tensor loop (False)."""

    def __init__(self, foreach: bool):
        self.foreach = bool(foreach)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.foreach:
            return getattr(torch, f"_foreach_{name}")

        def per_tensor(tensors, *args, **kwargs):
            results = [getattr(tensor, name)(*[a[i] if isinstance(a, (list, tuple)) else a for a in args],
                                             **kwargs)
                       for i, tensor in enumerate(tensors)]
            return None if name.endswith("_") else results
        return per_tensor


__all__ = ["TensorLists"]
