"""The lecture's forward file: makemore part 4's MLP with BatchNorm, as course data.

course.yaml names this file (`forward: lecture.py`) and each exercise one of its GRAPHS.
The grader reads the forward pass from here and nowhere else: it runs it to build each
case and autograd's truth, walks it for isolated verdicts, diagnoses and vector-Jacobian
checks, and the notebooks show its code. How to write one: docs/authoring.md.

Everything here follows the lecture line by line, except that bngain and bnbias are drawn
from the seeded generator too (the lecture draws them from the unseeded global one, which
nobody can reproduce).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grader.courseware.names import names_world, train_batch

# Each forward pass as the lecture writes it: one `name = expression` per line, the last one
# `loss`. Lines read the parameters, the batch (Xb, Yb), n (the batch size) and SIZES.
GRAPHS = {
    # Exercises 1-3: the forward pass chunked into atoms.
    "atomic": """
emb = C[Xb]                                   # embed the characters into vectors
embcat = emb.view(emb.shape[0], -1)           # concatenate the vectors
hprebn = embcat @ W1 + b1                     # hidden layer pre-activation
bnmeani = 1/n*hprebn.sum(0, keepdim=True)
bndiff = hprebn - bnmeani
bndiff2 = bndiff**2
bnvar = 1/(n-1)*(bndiff2).sum(0, keepdim=True)  # note: Bessel's correction (dividing by n-1, not n)
bnvar_inv = (bnvar + 1e-5)**-0.5
bnraw = bndiff * bnvar_inv
hpreact = bngain * bnraw + bnbias
h = torch.tanh(hpreact)                       # hidden layer
logits = h @ W2 + b2                          # output layer
logit_maxes = logits.max(1, keepdim=True).values
norm_logits = logits - logit_maxes            # subtract max for numerical stability
counts = norm_logits.exp()
counts_sum = counts.sum(1, keepdims=True)
counts_sum_inv = counts_sum**-1
probs = counts * counts_sum_inv
logprobs = probs.log()
loss = -logprobs[range(n), Yb].mean()
""",
    # Exercise 4: the training step, with the fused pieces.
    "training": """
emb = C[Xb]
embcat = emb.view(emb.shape[0], -1)
hprebn = embcat @ W1 + b1
bnmean = hprebn.mean(0, keepdim=True)
bnvar = hprebn.var(0, keepdim=True, unbiased=True)
bnvar_inv = (bnvar + 1e-5)**-0.5
bnraw = (hprebn - bnmean) * bnvar_inv
hpreact = bngain * bnraw + bnbias
h = torch.tanh(hpreact)
logits = h @ W2 + b2
loss = F.cross_entropy(logits, Yb)
""",
}

# The sizes every exercise shares; an exercise may change one (course.yaml `sizes:`).
SIZES = {"block_size": 3, "n_embd": 10, "n_hidden": 64}
ALPHABET = "abcdefghijklmnopqrstuvwxyz"  # names.txt's letters: a vocabulary of 27 with the '.' that ends a name
BN_EPS = 1e-5


def world(words: tuple[str, ...]) -> dict[str, object]:
    """The data graded code may read (the lecture's names: Xtr, itos, ...); its ints are sizes too."""
    return names_world(words, SIZES["block_size"])


def parameters(g: torch.Generator, sizes: dict[str, int], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The lecture's initialisation, in its order, all from one generator."""
    vocab_size, n_embd, n_hidden = sizes["vocab_size"], sizes["n_embd"], sizes["n_hidden"]
    n_in = n_embd * sizes["block_size"]
    C = torch.randn((vocab_size, n_embd), generator=g, dtype=dtype)
    W1 = torch.randn((n_in, n_hidden), generator=g, dtype=dtype) * (5 / 3) / (n_in**0.5)
    b1 = torch.randn(n_hidden, generator=g, dtype=dtype) * 0.1  # useless under batchnorm
    W2 = torch.randn((n_hidden, vocab_size), generator=g, dtype=dtype) * 0.1
    b2 = torch.randn(vocab_size, generator=g, dtype=dtype) * 0.1
    bngain = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1
    return {"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "bngain": bngain, "bnbias": bnbias}


def batch(g: torch.Generator, data: dict[str, object], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch from the training split, drawn with the same generator as the parameters."""
    return train_batch(g, data, batch_size)


# --- after a training run: what the lecture does with the trained net ------------------


def _hpreact(params: dict[str, torch.Tensor], X: torch.Tensor, bnmean: torch.Tensor,
             bnvar: torch.Tensor) -> torch.Tensor:
    embcat = params["C"][X].view(X.shape[0], -1)
    return params["bngain"] * (embcat @ params["W1"] + params["b1"] - bnmean) * (bnvar + BN_EPS) ** -0.5 \
        + params["bnbias"]


def _calibrated(params: dict[str, torch.Tensor], Xtr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batchnorm's statistics over the whole training set, as the lecture calibrates them."""
    hprebn = params["C"][Xtr].view(Xtr.shape[0], -1) @ params["W1"] + params["b1"]
    return hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)


@torch.no_grad()
def evaluate(params: dict[str, torch.Tensor], data: dict[str, object], sizes: dict[str, int]) -> dict[str, float]:
    """The loss on the training and validation splits, batchnorm calibrated on the training set."""
    Xtr, Ytr, Xdev, Ydev = (data[k] for k in ("Xtr", "Ytr", "Xdev", "Ydev"))
    assert isinstance(Xtr, torch.Tensor) and isinstance(Xdev, torch.Tensor)
    bnmean, bnvar = _calibrated(params, Xtr)
    losses = {}
    for split, X, Y in (("train", Xtr, Ytr), ("val", Xdev, Ydev)):
        logits = torch.tanh(_hpreact(params, X, bnmean, bnvar)) @ params["W2"] + params["b2"]
        losses[split] = float(F.cross_entropy(logits, Y))  # type: ignore[arg-type]
    return losses


LONGEST_SAMPLE = 50  # letters: names.txt's longest has 15


@torch.no_grad()
def sample(params: dict[str, torch.Tensor], data: dict[str, object], sizes: dict[str, int], g: torch.Generator,
           count: int) -> list[str]:
    """Names from the trained net, as the lecture samples them. The net is the student's: one that never
    picks the end of a name gets its names cut at LONGEST_SAMPLE letters."""
    Xtr, itos = data["Xtr"], data["itos"]
    assert isinstance(Xtr, torch.Tensor) and isinstance(itos, dict)
    bnmean, bnvar = _calibrated(params, Xtr)
    names = []
    for _ in range(count):
        out, context = [], [0] * sizes["block_size"]
        for _ in range(LONGEST_SAMPLE):
            hpreact = _hpreact(params, torch.tensor([context]), bnmean, bnvar)
            probs = F.softmax(torch.tanh(hpreact) @ params["W2"] + params["b2"], dim=1)
            ix = int(torch.multinomial(probs, num_samples=1, generator=g).item())
            context = [*context[1:], ix]
            out.append(ix)
            if ix == 0:
                break
        names.append("".join(itos[i] for i in out))
    return names


# --- diagnoses of the fused formulas (exercises 2, 3 and 4) ---------------------------


def fused_terms(tensor: str, values: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                n: int) -> dict[str, torch.Tensor | tuple[torch.Tensor, str]] | None:
    """The terms of the lecture's fused gradient formulas, each with a name (and a fix to say when
    it is missing). The grader uses them only where they add up to autograd's truth."""
    if tensor == "logits" and "logits" in values:
        softmax = torch.softmax(values["logits"], 1) / n
        one_hot = F.one_hot(values["Yb"], softmax.shape[1]).to(softmax.dtype) / n
        return {"the softmax term": softmax,
                "the one-hot term (the path through logprobs[range(n), Yb])":
                    (-one_hot, "subtract F.one_hot(Yb, vocab_size) / n")}
    if tensor == "hprebn" and "hpreact" in truth and {"bngain", "bnvar_inv", "bnraw"} <= values.keys():
        d, scale, raw = truth["hpreact"], values["bngain"] * values["bnvar_inv"], values["bnraw"]
        return {"the direct term": scale * d, "the batch-mean term": -scale / n * d.sum(0, keepdim=True),
                "the batch-variance term": -scale / (n - 1) * raw * (d * raw).sum(0, keepdim=True)}
    return None
