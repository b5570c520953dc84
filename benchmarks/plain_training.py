"""The floor for exercise 4's real run: the lecture's training loop as a plain script.

    python benchmarks/plain_training.py STEPS [BACKWARD.py]

No grader, no sandbox, no checks: the lecture's data, initialisation, forward pass and
update, with the backward pass read from BACKWARD.py (default: solutions/exercise4.py),
compiled once and run every step, on one thread. Then, as the grader's run ends, the
batchnorm calibration, the train and val losses, and 20 sampled names. Reads names.txt
from $NINJA_DATA (or ./names.txt). benchmarks/run.py times `ninja-grade exercise4
--steps N` against this script.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
steps = int(sys.argv[1])
backward = compile(Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "solutions" / "exercise4.py").read_text(),
                   "backward", "exec")

words = Path(os.environ.get("NINJA_DATA", "names.txt")).read_text().splitlines()
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)} | {".": 0}
itos = {i: s for s, i in stoi.items()}
vocab_size, block_size, n_embd, n_hidden, batch_size = len(itos), 3, 10, 200, 32
n = batch_size


def build_dataset(ws: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    X, Y = [], []
    for w in ws:
        context = [0] * block_size
        for ch in w + ".":
            X.append(context)
            Y.append(stoi[ch])
            context = [*context[1:], stoi[ch]]
    return torch.tensor(X), torch.tensor(Y)


random.Random(42).shuffle(words)
n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
Xtr, Ytr = build_dataset(words[:n1])
Xdev, Ydev = build_dataset(words[n1:n2])

g = torch.Generator().manual_seed(2147483647)  # the grader's exercise-4 seed
C = torch.randn((vocab_size, n_embd), generator=g)
W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5 / 3) / (n_embd * block_size) ** 0.5
b1 = torch.randn(n_hidden, generator=g) * 0.1
W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
b2 = torch.randn(vocab_size, generator=g) * 0.1
bngain = torch.randn((1, n_hidden), generator=g) * 0.1 + 1.0
bnbias = torch.randn((1, n_hidden), generator=g) * 0.1
parameters = [C, W1, b1, W2, b2, bngain, bnbias]
names = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]

lossi = []
with torch.no_grad():
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]
        emb = C[Xb]
        embcat = emb.view(emb.shape[0], -1)
        hprebn = embcat @ W1 + b1
        bnmean = hprebn.mean(0, keepdim=True)
        bnvar = hprebn.var(0, keepdim=True, unbiased=True)
        bnvar_inv = (bnvar + 1e-5) ** -0.5
        bnraw = (hprebn - bnmean) * bnvar_inv
        hpreact = bngain * bnraw + bnbias
        h = torch.tanh(hpreact)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Yb)
        ns = {"torch": torch, "F": F, "n": n, "Xb": Xb, "Yb": Yb, "C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2,
              "bngain": bngain, "bnbias": bnbias, "emb": emb, "embcat": embcat, "hprebn": hprebn, "bnmean": bnmean,
              "bnvar": bnvar, "bnvar_inv": bnvar_inv, "bnraw": bnraw, "hpreact": hpreact, "h": h, "logits": logits,
              "loss": loss}
        exec(backward, ns)
        lr = 0.1 if i < steps // 2 else 0.01
        for p, name in zip(parameters, names, strict=True):
            p.data += -lr * ns["d" + name].view(p.shape)
        lossi.append(loss.log10().item())

    hpre = C[Xtr].view(Xtr.shape[0], -1) @ W1 + b1
    mean, var = hpre.mean(0, keepdim=True), hpre.var(0, keepdim=True)
    for X, Y in ((Xtr, Ytr), (Xdev, Ydev)):
        hpreact = bngain * (C[X].view(X.shape[0], -1) @ W1 + b1 - mean) * (var + 1e-5) ** -0.5 + bnbias
        print(F.cross_entropy(torch.tanh(hpreact) @ W2 + b2, Y).item())
    gs = torch.Generator().manual_seed(2147483647 + 10)
    for _ in range(20):
        out, context = [], [0] * block_size
        while True:
            hpreact = bngain * (C[torch.tensor([context])].view(1, -1) @ W1 + b1 - mean) * (var + 1e-5) ** -0.5 \
                + bnbias
            ix = torch.multinomial(F.softmax(torch.tanh(hpreact) @ W2 + b2, dim=1), 1, generator=gs).item()
            context = [*context[1:], ix]
            out.append(ix)
            if ix == 0:
                break
        print("".join(itos[i] for i in out))
