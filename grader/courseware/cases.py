"""The lecture's forward pass, run on one Case, with autograd's gradients beside it.

A Case is one batch: a generator seed and a batch size. The lecture's own is seed
2147483647, batch 32. Everything here follows makemore part 4 line by line, except
that bngain and bnbias are drawn from the seeded generator too (the lecture draws
them from the unseeded global one, which nobody can reproduce).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from grader.courseware.course import CaseSpec
from grader.courseware.data import Dataset
from grader.courseware.graph import ATOMIC, Graph

BLOCK_SIZE = 3  # characters of context
N_EMBD = 10  # dimensions of a character embedding
N_HIDDEN = 64  # neurons in the hidden layer


@dataclass(frozen=True)
class Splits:
    """The lecture's 80/10/10 split of the shuffled names, as (X, Y) tensors."""

    vocab_size: int
    Xtr: torch.Tensor
    Ytr: torch.Tensor
    Xdev: torch.Tensor
    Ydev: torch.Tensor
    Xte: torch.Tensor
    Yte: torch.Tensor
    itos: dict[int, str] = field(repr=False)
    words: tuple[str, ...] = field(default=(), repr=False)  # shuffled, as the lecture's `words` ends up


def world_of(splits: Splits) -> dict[str, object]:
    """The lecture's data under its own names (words chars stoi itos Xtr Ytr Xdev Ydev Xte Yte): graded
    code may read them, so a student's line such as `num_classes=len(itos)` runs as in the notebook."""
    stoi = {s: i for i, s in splits.itos.items()}
    return {"words": list(splits.words), "chars": [splits.itos[i] for i in sorted(splits.itos) if i != 0],
            "stoi": stoi, "itos": dict(splits.itos), "Xtr": splits.Xtr, "Ytr": splits.Ytr, "Xdev": splits.Xdev,
            "Ydev": splits.Ydev, "Xte": splits.Xte, "Yte": splits.Yte}


def build_dataset(words: tuple[str, ...] | list[str], stoi: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's examples: each character of "word." and the BLOCK_SIZE characters before
    it in its word, 0-padded. Vectorised: the same tensors as the lecture's loop, ~20x faster."""
    lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
    Y = torch.tensor([stoi[ch] for ch in "".join(w + "." for w in words)], dtype=torch.long)
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)  # where each word begins
    pos = torch.arange(Y.shape[0])
    X = torch.zeros((Y.shape[0], BLOCK_SIZE), dtype=torch.long)
    for back in range(1, BLOCK_SIZE + 1):
        src = pos - back
        X[:, BLOCK_SIZE - back] = torch.where(src >= starts, Y[src.clamp(min=0)], 0)
    return X, Y


def make_splits(dataset: Dataset) -> Splits:
    words = list(dataset.words)
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    random.Random(42).shuffle(words)  # the same order as random.seed(42); random.shuffle
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    Xtr, Ytr = build_dataset(words[:n1], stoi)
    Xdev, Ydev = build_dataset(words[n1:n2], stoi)
    Xte, Yte = build_dataset(words[n2:], stoi)
    return Splits(len(itos), Xtr, Ytr, Xdev, Ydev, Xte, Yte, itos, tuple(words))


@dataclass(frozen=True)
class Case:
    """One forward pass: what the student's code is given, and the true gradients."""

    spec: CaseSpec
    given: dict[str, object]  # tensors (detached), sizes; the submission namespace
    truth: dict[str, torch.Tensor]  # tensor name -> d loss / d tensor, from autograd
    graph: Graph = ATOMIC

    @property
    def label(self) -> str:
        return self.spec.name

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.given.items() if isinstance(v, torch.Tensor)}


def init_parameters(g: torch.Generator, vocab_size: int, n_hidden: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The lecture's initialisation, in its order, all from one generator."""
    n_in = N_EMBD * BLOCK_SIZE
    C = torch.randn((vocab_size, N_EMBD), generator=g, dtype=dtype)
    W1 = torch.randn((n_in, n_hidden), generator=g, dtype=dtype) * (5 / 3) / (n_in**0.5)
    b1 = torch.randn(n_hidden, generator=g, dtype=dtype) * 0.1  # useless under batchnorm
    W2 = torch.randn((n_hidden, vocab_size), generator=g, dtype=dtype) * 0.1
    b2 = torch.randn(vocab_size, generator=g, dtype=dtype) * 0.1
    bngain = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g, dtype=dtype) * 0.1
    return {"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "bngain": bngain, "bnbias": bnbias}


def case_from(spec: CaseSpec, params: dict[str, torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor, *,
              graph: Graph, vocab_size: int) -> Case:
    """Run `graph`'s forward pass on one batch and let autograd compute every gradient."""
    leaves = {k: p.detach().clone().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        acts = graph.forward(leaves, Xb, Yb)
        for t in acts.values():
            t.retain_grad()
        acts["loss"].backward()  # type: ignore[no-untyped-call]
    truth: dict[str, torch.Tensor] = {}
    for name, t in (*leaves.items(), *acts.items()):
        if name != "loss" and t.grad is not None:
            truth[name] = t.grad.detach().clone()
    return Case(spec, namespace_for(leaves, acts, Xb, Yb, vocab_size), truth, graph)


def namespace_for(params: dict[str, torch.Tensor], acts: dict[str, torch.Tensor], Xb: torch.Tensor,
                  Yb: torch.Tensor, vocab_size: int, *, copy: bool = True) -> dict[str, object]:
    """What student code is given: detached tensors under the lecture's names, and the sizes.

    copy=False passes the tensors as they are, for a caller whose tensors need no detaching (autograd
    is off there) and that copies them anyway (runner.namespace, in the sandbox's child)."""
    def own(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone() if copy else t

    given: dict[str, object] = {name: own(t) for name, t in (*params.items(), *acts.items())}
    n = int(Xb.shape[0])
    given.update(Xb=own(Xb), Yb=own(Yb), n=n, batch_size=n, vocab_size=vocab_size, block_size=BLOCK_SIZE,
                 n_embd=N_EMBD, n_hidden=int(params["W1"].shape[1]))
    return given


def build_case(spec: CaseSpec, splits: Splits, *, n_hidden: int = N_HIDDEN) -> Case:
    """The lecture's exercise 1-3 set-up for one case: parameters, then the batch."""
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    g = torch.Generator().manual_seed(spec.seed)
    params = init_parameters(g, splits.vocab_size, n_hidden, dtype)
    ix = torch.randint(0, splits.Xtr.shape[0], (spec.batch_size,), generator=g)
    return case_from(spec, params, splits.Xtr[ix], splits.Ytr[ix], graph=ATOMIC, vocab_size=splits.vocab_size)
