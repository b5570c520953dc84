"""The forward pass and its cases: the lecture's data, shapes and numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grader.cases import build_case, build_dataset, make_splits
from grader.course import CaseSpec, Course
from grader.data import Dataset
from grader.graph import ATOMIC, TRAINING

LECTURE = CaseSpec("lecture", 2147483647, 32)


@pytest.fixture(scope="module")
def real_dataset(dataset: Dataset) -> Dataset:
    if dataset.synthetic or dataset.note:
        pytest.skip("needs the real names.txt: set NINJA_DATA (make test does)")
    return dataset


def test_splits_match_the_lecture(real_dataset: Dataset) -> None:
    """random.seed(42) shuffle and the 80/10/10 split give the lecture's sizes."""
    splits = make_splits(real_dataset)
    assert splits.vocab_size == 27
    assert tuple(splits.Xtr.shape) == (182625, 3)
    assert tuple(splits.Xdev.shape) == (22655, 3)
    assert tuple(splits.Xte.shape) == (22866, 3)


def test_lecture_case_is_deterministic_with_documented_loss(real_dataset: Dataset) -> None:
    """The lecture's case gives the loss the README quotes, and the same one every time."""
    splits = make_splits(real_dataset)
    a, b = build_case(LECTURE, splits), build_case(LECTURE, splits)
    assert torch.equal(a.given["Xb"], b.given["Xb"])
    assert a.given["loss"].item() == pytest.approx(3.5571, abs=1e-4)


def test_forward_loss_is_cross_entropy(course: Course, dataset: Dataset) -> None:
    """The chunked forward pass computes F.cross_entropy, on every case."""
    splits = make_splits(dataset)
    for spec in course.cases:
        case = build_case(spec, splits)
        expected = F.cross_entropy(case.given["logits"], case.given["Yb"])  # type: ignore[arg-type]
        assert case.given["loss"].item() == pytest.approx(expected.item(), abs=1e-5)  # type: ignore[union-attr]
        assert case.given["n"] == spec.batch_size == case.given["Xb"].shape[0]  # type: ignore[union-attr]


def test_case_gives_detached_tensors_and_every_gradient(course: Course, dataset: Dataset) -> None:
    """What the student gets has no graph; the truth covers every tensor but the loss."""
    case = build_case(course.cases[0], make_splits(dataset))
    tensors = [v for v in case.given.values() if isinstance(v, torch.Tensor)]
    assert tensors and not any(t.requires_grad or t.grad_fn is not None for t in tensors)
    assert set(case.truth) == (set(ATOMIC.inputs) - {"loss"}) | {"C", "W1", "b1", "W2", "b2", "bngain", "bnbias"}
    for name, grad in case.truth.items():
        assert grad.shape == case.given[name].shape, name  # type: ignore[union-attr]


def test_graph_consumers_and_downstream() -> None:
    """The forward graph knows tensors used twice and everything after a tensor."""
    assert set(ATOMIC.consumers("counts")) == {"counts_sum", "probs"}
    assert set(ATOMIC.consumers("hprebn")) == {"bnmeani", "bndiff"}
    assert ATOMIC.downstream("logprobs") == {"loss"}
    assert {"bnraw", "hpreact", "logits", "loss"} <= ATOMIC.downstream("bndiff")
    assert "bnmeani" not in ATOMIC.downstream("bndiff")
    assert set(TRAINING.consumers("hprebn")) == {"bnmean", "bnvar", "bnraw"}


def lecture_build_dataset(words: list[str], stoi: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's own loop, as the reference for the vectorised one."""
    X, Y = [], []
    for w in words:
        context = [0] * 3
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = [*context[1:], ix]
    return torch.tensor(X), torch.tensor(Y)


def test_vectorised_dataset_equals_the_lecture_loop(dataset: Dataset) -> None:
    """build_dataset gives exactly the lecture's X and Y, short words included."""
    words = [*dataset.words[:3000], "a", "bo", "xyzzy"]
    stoi = {s: i + 1 for i, s in enumerate(sorted(set("".join(words))))} | {".": 0}
    X, Y = build_dataset(words, stoi)
    X_ref, Y_ref = lecture_build_dataset(words, stoi)
    assert torch.equal(X, X_ref) and torch.equal(Y, Y_ref)
