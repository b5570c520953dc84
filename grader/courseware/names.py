"""makemore's data for a course's forward file: from names.txt's words to context windows.

A forward file (grader/courseware/forward.py) builds its `world` from the words of the data
set; a course on makemore's names calls `names_world` and has the lecture's splits.
"""

from __future__ import annotations

import random

import torch


def context_windows(words: tuple[str, ...] | list[str], stoi: dict[str, int],
                    block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """makemore's examples: each character of "word." and the block_size characters before it in
    its word, 0-padded. Vectorised: the same tensors as the lecture's loop, with no Python loop per example."""
    lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
    Y = torch.tensor([stoi[ch] for ch in "".join(w + "." for w in words)], dtype=torch.long)
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)  # where each word begins
    pos = torch.arange(Y.shape[0])
    X = torch.zeros((Y.shape[0], block_size), dtype=torch.long)
    for back in range(1, block_size + 1):
        src = pos - back
        X[:, block_size - back] = torch.where(src >= starts, Y[src.clamp(min=0)], 0)
    return X, Y


def names_world(words: tuple[str, ...], block_size: int) -> dict[str, object]:
    """makemore's data under its own names, for a course's forward file: the words shuffled as
    random.seed(42) shuffles them, the 80/10/10 split into (X, Y) context windows, the
    vocabulary (words chars stoi itos vocab_size Xtr Ytr Xdev Ydev Xte Yte)."""
    shuffled = list(words)
    chars = sorted(set("".join(shuffled)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    random.Random(42).shuffle(shuffled)  # the same order as random.seed(42); random.shuffle
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    Xtr, Ytr = context_windows(shuffled[:n1], stoi, block_size)
    Xdev, Ydev = context_windows(shuffled[n1:n2], stoi, block_size)
    Xte, Yte = context_windows(shuffled[n2:], stoi, block_size)
    return {"words": shuffled, "chars": chars, "stoi": stoi, "itos": itos, "vocab_size": len(itos),
            "Xtr": Xtr, "Ytr": Ytr, "Xdev": Xdev, "Ydev": Ydev, "Xte": Xte, "Yte": Yte}


def train_batch(g: torch.Generator, world: dict[str, object], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch from names_world's training split (Xtr, Ytr), drawn with the generator g, as the
    lecture draws it: a forward file's `batch`."""
    Xtr, Ytr = world["Xtr"], world["Ytr"]
    assert isinstance(Xtr, torch.Tensor) and isinstance(Ytr, torch.Tensor)
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    return Xtr[ix], Ytr[ix]
