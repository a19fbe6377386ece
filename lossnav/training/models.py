"""Models of the training experiments (the paper's App. B: an MLP with two hidden layers and a
small CNN; here a 1-D CNN, since digits and MNIST-1D are fed as sequences).

* ``mlp``: flatten → 128 → ReLU → 128 → ReLU → classes.
* ``cnn``: Conv1d(1→16, k3) → ReLU → Conv1d(16→32, k3) → ReLU → MaxPool(2) → Conv1d(32→32, k3)
  → ReLU → MaxPool(2) → flatten → Linear → classes.

* ``transformer``: a decoder-style transformer for token datasets (``modular``; Power et al.
  2022): token + learned position embeddings (width 128), 2 pre-norm blocks of causal
  self-attention (4 heads) and a ReLU MLP (512), a final LayerNorm and a linear read-out of
  the last position (the "=" token): ≈ 0.42 M parameters for p = 97. The attention is written
  out (``softmax(QKᵀ/√d + causal mask)V``) instead of ``scaled_dot_product_attention``: the
  fused kernels have no double backward, and the curvature rules need Hessian-vector products
  (batched with ``is_grads_batched``) through it.

Weights are initialised from ``torch.manual_seed(seed)`` (PyTorch's default initialisation),
so a seed fixes the model. Token models take ``vocabulary`` (set ``builder.tokens = True``);
:func:`make_model` refuses a token model on feature data and the reverse. Register more with
:func:`register_model`.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp(input_shape, classes, hidden=128):
    size = 1
    for dim in input_shape:
        size *= dim
    return nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def cnn(input_shape, classes, channels=(16, 32, 32)):
    in_channels, length = input_shape
    c1, c2, c3 = channels
    features = nn.Sequential(nn.Conv1d(in_channels, c1, 3, padding=1), nn.ReLU(),
                             nn.Conv1d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten())
    with torch.no_grad():
        size = features(torch.zeros(1, in_channels, length)).shape[1]
    return nn.Sequential(features, nn.Linear(size, classes))


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask, twice differentiable (module docstring)."""

    def __init__(self, width, heads):
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * (width // self.heads) ** -0.5
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        return self.out((weights @ v).transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN x), then x + MLP(LN x)."""

    def __init__(self, width, heads, hidden):
        super().__init__()
        self.attention_norm, self.attention = nn.LayerNorm(width), CausalSelfAttention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Decoder-style transformer over token ids (N, length) → logits (N, classes), read at the
    last position."""

    def __init__(self, vocabulary, length, classes, width=128, layers=2, heads=4, hidden=512):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        self.blocks = nn.Sequential(*(Block(width, heads, hidden) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, classes)

    def forward(self, tokens):
        x = self.blocks(self.embedding(tokens) + self.position)
        return self.readout(self.norm(x[:, -1]))


def transformer(input_shape, classes, vocabulary, width=128, layers=2, heads=4, hidden=512):
    (length,) = input_shape
    return Transformer(vocabulary, length, classes, width, layers, heads, hidden)


transformer.tokens = True

MODELS = {"mlp": mlp, "cnn": cnn, "transformer": transformer}


def register_model(name: str, builder) -> None:
    """Add a model: ``builder(input_shape, classes)`` → ``nn.Module`` (token models:
    ``builder(input_shape, classes, vocabulary)`` with ``builder.tokens = True``)."""
    MODELS[name] = builder


def make_model(name: str, data, seed: int = 0, **options) -> nn.Module:
    """Model ``name`` for dataset ``data``, initialised from ``seed`` (``options`` go to the
    builder, e.g. ``width=``); ValueError on an unknown name or a model that does not fit the
    data's inputs (tokens or features)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    builder = MODELS[name]
    wants_tokens, has_tokens = bool(getattr(builder, "tokens", False)), data.vocabulary is not None
    if wants_tokens != has_tokens:
        fitting = [key for key, other in MODELS.items()
                   if bool(getattr(other, "tokens", False)) == has_tokens]
        raise ValueError(f"model {name!r} takes {'token' if wants_tokens else 'feature'} inputs, dataset "
                         f"{data.name!r} holds {'tokens' if has_tokens else 'features'} "
                         f"(models for it: {', '.join(fitting)})")
    torch.manual_seed(seed)
    if has_tokens:
        return builder(data.input_shape, data.classes, data.vocabulary, **options)
    return builder(data.input_shape, data.classes, **options)
