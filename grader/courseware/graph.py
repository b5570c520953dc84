"""The lecture's forward passes as graphs of named nodes, and the backward pieces they imply.

Each node is one line of a forward pass, as a function of the values computed so far:
ATOMIC is exercises 1-3 (every atom), TRAINING is exercise 4's training step. The grader
uses a graph three ways: to run the forward pass, to know which gradients are upstream
of which (for isolated verdicts), and to compute one consumer's contribution to a
gradient (for diagnoses and vector-Jacobian checks).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

BN_EPS = 1e-5
Values = dict[str, torch.Tensor]


def _n(v: Values) -> int:
    return int(v["Xb"].shape[0])


Node = tuple[tuple[str, ...], Callable[[Values], torch.Tensor]]

# Exercises 1-3: the forward pass chunked into atoms. node -> (its inputs, how it is computed).
ATOMIC_NODES: dict[str, Node] = {
    "emb": (("C",), lambda v: v["C"][v["Xb"]]),  # (n, 3, 10)
    "embcat": (("emb",), lambda v: v["emb"].view(v["emb"].shape[0], -1)),  # (n, 30)
    "hprebn": (("embcat", "W1", "b1"), lambda v: v["embcat"] @ v["W1"] + v["b1"]),  # (n, 64)
    "bnmeani": (("hprebn",), lambda v: 1 / _n(v) * v["hprebn"].sum(0, keepdim=True)),
    "bndiff": (("hprebn", "bnmeani"), lambda v: v["hprebn"] - v["bnmeani"]),
    "bndiff2": (("bndiff",), lambda v: v["bndiff"] ** 2),
    "bnvar": (("bndiff2",), lambda v: 1 / (_n(v) - 1) * (v["bndiff2"]).sum(0, keepdim=True)),  # n-1: Bessel
    "bnvar_inv": (("bnvar",), lambda v: (v["bnvar"] + BN_EPS) ** -0.5),
    "bnraw": (("bndiff", "bnvar_inv"), lambda v: v["bndiff"] * v["bnvar_inv"]),
    "hpreact": (("bngain", "bnraw", "bnbias"), lambda v: v["bngain"] * v["bnraw"] + v["bnbias"]),
    "h": (("hpreact",), lambda v: torch.tanh(v["hpreact"])),
    "logits": (("h", "W2", "b2"), lambda v: v["h"] @ v["W2"] + v["b2"]),  # (n, 27)
    "logit_maxes": (("logits",), lambda v: v["logits"].max(1, keepdim=True).values),
    "norm_logits": (("logits", "logit_maxes"), lambda v: v["logits"] - v["logit_maxes"]),  # for stability
    "counts": (("norm_logits",), lambda v: v["norm_logits"].exp()),
    "counts_sum": (("counts",), lambda v: v["counts"].sum(1, keepdim=True)),
    "counts_sum_inv": (("counts_sum",), lambda v: v["counts_sum"] ** -1),
    "probs": (("counts", "counts_sum_inv"), lambda v: v["counts"] * v["counts_sum_inv"]),
    "logprobs": (("probs",), lambda v: v["probs"].log()),
    "loss": (("logprobs",), lambda v: -v["logprobs"][range(_n(v)), v["Yb"]].mean()),
}

# Exercise 4: the training step as the lecture writes it, with the fused pieces.
TRAINING_NODES: dict[str, Node] = {
    "emb": ATOMIC_NODES["emb"],
    "embcat": ATOMIC_NODES["embcat"],
    "hprebn": ATOMIC_NODES["hprebn"],  # (n, 200)
    "bnmean": (("hprebn",), lambda v: v["hprebn"].mean(0, keepdim=True)),
    "bnvar": (("hprebn",), lambda v: v["hprebn"].var(0, keepdim=True, unbiased=True)),
    "bnvar_inv": (("bnvar",), lambda v: (v["bnvar"] + BN_EPS) ** -0.5),
    "bnraw": (("hprebn", "bnmean", "bnvar_inv"), lambda v: (v["hprebn"] - v["bnmean"]) * v["bnvar_inv"]),
    "hpreact": ATOMIC_NODES["hpreact"],
    "h": ATOMIC_NODES["h"],
    "logits": ATOMIC_NODES["logits"],
    "loss": (("logits",), lambda v: torch.nn.functional.cross_entropy(v["logits"], v["Yb"])),
}


class Graph:
    """A forward pass as named nodes, in order; what the backward pass walks through."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.inputs: dict[str, tuple[str, ...]] = {name: ins for name, (ins, _) in nodes.items()}

    def forward(self, params: Values, Xb: torch.Tensor, Yb: torch.Tensor) -> Values:
        """Every intermediate of the forward pass, by name."""
        v: Values = {**params, "Xb": Xb, "Yb": Yb}
        for name, (_, fn) in self.nodes.items():
            v[name] = fn(v)
        return {name: v[name] for name in self.nodes}

    def consumers(self, tensor: str) -> tuple[str, ...]:
        """The tensors computed directly from `tensor`."""
        return tuple(out for out, ins in self.inputs.items() if tensor in ins)

    def downstream(self, tensor: str) -> frozenset[str]:
        """Every tensor that depends on `tensor`: its gradient flows back through these."""
        seen: set[str] = set()
        todo = list(self.consumers(tensor))
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(self.consumers(t))
        return frozenset(seen)

    def contribution(self, values: dict[str, torch.Tensor], tensor: str, consumer: str, upstream: torch.Tensor,
                     *, broadcast: bool = False) -> torch.Tensor:
        """What flows back into `tensor` through `consumer` alone, given d loss / d consumer.

        With broadcast=True, `tensor` is first expanded to the consumer's shape, so the
        result is the gradient before the sum over broadcast dimensions.
        """
        inputs: Values = {k: values[k].detach() for k in (*self.inputs[consumer], "Xb", "Yb")}
        leaf = inputs[tensor].clone()
        if broadcast:
            leaf = leaf.expand(upstream.shape).clone()
        leaf.requires_grad_(True)
        inputs[tensor] = leaf
        with torch.enable_grad():
            out = self.nodes[consumer][1](inputs)
            # <out, upstream> backpropagated from a scalar: handing torch a gradient tensor
            # (backward(upstream), autograd.grad) imports sympy on first use, ~0.4 s.
            (out * upstream).sum().backward()  # type: ignore[no-untyped-call]
        assert leaf.grad is not None
        return leaf.grad


ATOMIC = Graph(ATOMIC_NODES)
TRAINING = Graph(TRAINING_NODES)
GRAPHS = {"atomic": ATOMIC, "training": TRAINING}  # by name, for the sandbox's child (grader/confined/child.py)
