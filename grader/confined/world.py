"""The data graded code may read (the forward file's `world`), for a process that does not inherit it
through a fork (the zygote, the portable sandbox's child): as JSON and tensors, and back."""

from __future__ import annotations

from typing import Any

import torch


def encode_world(world: dict[str, object]) -> tuple[dict[str, list[Any]], dict[str, torch.Tensor]]:
    """The data graded code may read, as JSON and tensors for a fresh child (decode_world);
    a dict goes as its pairs, so that itos keeps its int keys."""
    encoded: dict[str, list[Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in world.items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value
        elif isinstance(value, dict):
            encoded[name] = ["dict", [[k, v] for k, v in value.items()]]
        else:
            encoded[name] = ["value", value]
    return encoded, tensors


def decode_world(encoded: dict[str, Any], tensors: dict[str, Any]) -> dict[str, object]:
    """The data graded code may read, from its JSON form (encode_world) and its tensors."""
    world: dict[str, object] = dict(tensors)
    for name, (kind, value) in encoded.items():
        world[name] = dict((k, v) for k, v in value) if kind == "dict" else value
    return world
