"""A second course's forward file: the lecture's MLP with LayerNorm in place of BatchNorm.

The same data, embedding and layers as makemore part 4; the hidden layer is normalised
across its features, per example (as nn.LayerNorm does, with the biased variance), not
across the batch. So b1 matters (BatchNorm's mean cancels it), and no example's gradient
depends on the others'. Written only through the forward-file interface (docs/authoring.md);
the grader knows nothing of it.
"""

from __future__ import annotations

import torch

from grader.courseware.names import names_world, train_batch

GRAPHS = {
    # Both exercises are judged on this forward pass: exercise 1 atom by atom, exercise 2 the
    # normalisation in one go.
    "layernorm": """
emb = C[Xb]                                   # embed the characters into vectors
embcat = emb.view(emb.shape[0], -1)           # concatenate the vectors
hpreln = embcat @ W1 + b1                     # hidden layer pre-activation
lnmeani = hpreln.mean(1, keepdim=True)        # per example, across the features
lndiff = hpreln - lnmeani
lndiff2 = lndiff**2
lnvar = lndiff2.mean(1, keepdim=True)         # biased (divides by n_hidden), as nn.LayerNorm
lnvar_inv = (lnvar + 1e-5)**-0.5
lnraw = lndiff * lnvar_inv
hpreact = lngain * lnraw + lnbias
h = torch.tanh(hpreact)                       # hidden layer
logits = h @ W2 + b2                          # output layer
loss = F.cross_entropy(logits, Yb)
""",
}

SIZES = {"block_size": 3, "n_embd": 10, "n_hidden": 64}


def world(words: tuple[str, ...]) -> dict[str, object]:
    return names_world(words, SIZES["block_size"])


def parameters(g: torch.Generator, sizes: dict[str, int], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    vocab_size, n_embd, n_hidden = sizes["vocab_size"], sizes["n_embd"], sizes["n_hidden"]
    n_in = n_embd * sizes["block_size"]
    return {
        "C": torch.randn((vocab_size, n_embd), generator=g, dtype=dtype),
        "W1": torch.randn((n_in, n_hidden), generator=g, dtype=dtype) * (5 / 3) / (n_in**0.5),
        "b1": torch.randn(n_hidden, generator=g, dtype=dtype) * 0.1,
        "W2": torch.randn((n_hidden, vocab_size), generator=g, dtype=dtype) * 0.1,
        "b2": torch.randn(vocab_size, generator=g, dtype=dtype) * 0.1,
        # Not 1 and 0: a gain of exactly 1 would hide a forgotten factor of lngain.
        "lngain": torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1 + 1.0,
        "lnbias": torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1,
    }


def batch(g: torch.Generator, data: dict[str, object], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch from the training split, drawn with the same generator as the parameters."""
    return train_batch(g, data, batch_size)


def fused_terms(tensor: str, values: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                n: int) -> dict[str, torch.Tensor | tuple[torch.Tensor, str]] | None:
    """LayerNorm's fused gradient, as three named terms, for diagnoses of exercise 2."""
    if tensor != "hpreln" or "hpreact" not in truth or not {"lngain", "lnvar_inv", "lnraw"} <= values.keys():
        return None
    d = values["lngain"] * truth["hpreact"]  # the gradient of lnraw
    inv, raw, features = values["lnvar_inv"], values["lnraw"], values["lnraw"].shape[1]
    return {"the direct term": inv * d,
            "the mean term": (-inv / features * d.sum(1, keepdim=True), "subtract the mean of dlnraw over dim 1"),
            "the variance term": -inv / features * raw * (d * raw).sum(1, keepdim=True)}
