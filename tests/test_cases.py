"""The lecture's forward file (lecture.py) and its cases: the lecture's data, shapes and numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grader.courseware.cases import Setting, build_case, setting_of
from grader.courseware.course import CaseSpec, Course
from grader.courseware.data import Dataset
from grader.courseware.forward import load_forward
from grader.courseware.graph import Graph, GraphError
from grader.courseware.names import context_windows, names_world
from tests.conftest import ROOT

LECTURE = CaseSpec("lecture", 2147483647, 32)


@pytest.fixture(scope="module")
def real_dataset(dataset: Dataset) -> Dataset:
    if dataset.synthetic or dataset.note:
        pytest.skip("needs the real names.txt: set NINJA_DATA (make test does)")
    return dataset


@pytest.fixture(scope="module")
def atomic(course: Course, dataset: Dataset) -> Setting:
    return setting_of(course.exercise("exercise1"), dataset)


def test_splits_match_the_lecture(real_dataset: Dataset) -> None:
    """random.seed(42) shuffle and the 80/10/10 split give the lecture's sizes."""
    world = names_world(real_dataset.words, 3)
    assert world["vocab_size"] == 27
    assert tuple(world["Xtr"].shape) == (182625, 3)  # type: ignore[attr-defined]
    assert tuple(world["Xdev"].shape) == (22655, 3)  # type: ignore[attr-defined]
    assert tuple(world["Xte"].shape) == (22866, 3)  # type: ignore[attr-defined]


def test_lecture_case_is_deterministic_with_documented_loss(course: Course, real_dataset: Dataset) -> None:
    """The lecture's case gives the loss docs/students.md quotes, and the same one every time."""
    setting = setting_of(course.exercise("exercise1"), real_dataset)
    a, b = build_case(LECTURE, setting), build_case(LECTURE, setting)
    assert torch.equal(a.namespace["Xb"], b.namespace["Xb"])
    assert a.namespace["loss"].item() == pytest.approx(3.5571, abs=1e-4)


def test_forward_loss_is_cross_entropy(course: Course, atomic: Setting) -> None:
    """The chunked forward pass computes F.cross_entropy, on every case."""
    for spec in course.cases:
        case = build_case(spec, atomic)
        expected = F.cross_entropy(case.namespace["logits"], case.namespace["Yb"])  # type: ignore[arg-type]
        assert case.namespace["loss"].item() == pytest.approx(expected.item(), abs=1e-5)  # type: ignore[union-attr]
        assert case.namespace["n"] == spec.batch_size == case.namespace["Xb"].shape[0]  # type: ignore[union-attr]


# The submission namespace's tensors (docs/DESIGN.md, a contract), written out, not read from graph.py.
LECTURE_TENSORS = {
    "logprobs", "probs", "counts", "counts_sum", "counts_sum_inv", "norm_logits", "logit_maxes", "logits", "h",
    "hpreact", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff", "hprebn", "bnmeani", "embcat", "emb",
    "C", "W1", "b1", "W2", "b2", "bngain", "bnbias",
}


def lecture_forward_and_backward(given: dict[str, object]) -> dict[str, torch.Tensor]:
    """makemore part 4's forward pass as the lecture writes it, independent of grader/courseware/graph.py,
    on a case's parameters and batch; loss.backward() gives every tensor's gradient."""
    p = {k: given[k].clone().requires_grad_(True) for k in ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")}  # type: ignore[union-attr]
    Xb, Yb = given["Xb"], given["Yb"]
    n = Xb.shape[0]  # type: ignore[union-attr]
    emb = p["C"][Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ p["W1"] + p["b1"]
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
    bndiff = hprebn - bnmeani
    bndiff2 = bndiff**2
    bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)
    bnvar_inv = (bnvar + 1e-5) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = p["bngain"] * bnraw + p["bnbias"]
    h = torch.tanh(hpreact)
    logits = h @ p["W2"] + p["b2"]
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum = counts.sum(1, keepdims=True)
    counts_sum_inv = counts_sum**-1
    probs = counts * counts_sum_inv
    logprobs = probs.log()
    loss = -logprobs[range(n), Yb].mean()
    inner = {"logprobs": logprobs, "probs": probs, "counts": counts, "counts_sum": counts_sum,
             "counts_sum_inv": counts_sum_inv, "norm_logits": norm_logits, "logit_maxes": logit_maxes,
             "logits": logits, "h": h, "hpreact": hpreact, "bnraw": bnraw, "bnvar_inv": bnvar_inv, "bnvar": bnvar,
             "bndiff2": bndiff2, "bndiff": bndiff, "hprebn": hprebn, "bnmeani": bnmeani, "embcat": embcat, "emb": emb}
    for t in inner.values():
        t.retain_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    return {name: t.grad for name, t in (*inner.items(), *p.items()) if t.grad is not None}


def test_case_gives_detached_tensors_and_every_gradient(course: Course, atomic: Setting) -> None:
    """What the student gets has no graph; the truth is every namespace tensor's gradient, equal to
    what the lecture's own forward pass and loss.backward() give, on every case."""
    for spec in course.cases:
        case = build_case(spec, atomic)
        tensors = [v for v in case.namespace.values() if isinstance(v, torch.Tensor)]
        assert tensors and not any(t.requires_grad or t.grad_fn is not None for t in tensors)
        assert set(case.truth) == LECTURE_TENSORS
        with torch.enable_grad():
            reference = lecture_forward_and_backward(case.namespace)
        assert set(reference) == LECTURE_TENSORS
        for name, grad in case.truth.items():
            assert grad.shape == case.namespace[name].shape, name  # type: ignore[union-attr]
            assert torch.allclose(grad, reference[name], rtol=1e-5, atol=1e-7), name


def test_graph_consumers_and_descendants() -> None:
    """The forward graph, read from lecture.py's code, knows tensors used twice and everything after a tensor."""
    forward = load_forward(ROOT / "lecture.py")
    ATOMIC, TRAINING = forward.graph("atomic"), forward.graph("training")
    assert set(ATOMIC.consumers("counts")) == {"counts_sum", "probs"}
    assert set(ATOMIC.consumers("hprebn")) == {"bnmeani", "bndiff"}
    assert ATOMIC.descendants("logprobs") == {"loss"}
    assert {"bnraw", "hpreact", "logits", "loss"} <= ATOMIC.descendants("bndiff")
    assert "bnmeani" not in ATOMIC.descendants("bndiff")
    assert set(TRAINING.consumers("hprebn")) == {"bnmean", "bnvar", "bnraw"}


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3"])
def test_contributions_in_one_pass_are_each_edge_on_its_own(course: Course, dataset: Dataset, exercise_id: str) -> None:
    """One backward pass for every (tensor, consumer) edge gives, bit for bit, what each edge's own pass
    gives: on the pinned case and a float64 one of another batch size, with random upstream gradients."""
    exercise = course.exercise(exercise_id)
    setting = setting_of(exercise, dataset)
    for spec in (*course.cases, CaseSpec("float64", 7, 20, dtype="float64")):
        case = build_case(spec, setting)
        g = torch.Generator().manual_seed(spec.seed)
        upstream = {c: torch.randn(case.truth[c].shape, generator=g, dtype=case.truth[c].dtype) for c in case.truth}
        edges = {c: tuple(t for t in setting.graph.inputs[c] if t in case.truth)
                 for c in setting.graph.nodes if c in case.truth}
        edges = {c: ts for c, ts in edges.items() if ts}
        together = setting.graph.contributions(case.namespace, edges, upstream)
        assert len(together) == sum(map(len, edges.values())) > 10
        for (tensor, consumer), part in together.items():
            alone = setting.graph.contribution(case.namespace, tensor, consumer, upstream[consumer])
            assert torch.equal(part, alone), (spec.name, tensor, consumer)


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
    """context_windows gives exactly the lecture's X and Y, short words included."""
    words = [*dataset.words[:3000], "a", "bo", "xyzzy"]
    stoi = {s: i + 1 for i, s in enumerate(sorted(set("".join(words))))} | {".": 0}
    X, Y = context_windows(words, stoi, 3)
    X_ref, Y_ref = lecture_build_dataset(words, stoi)
    assert torch.equal(X, X_ref) and torch.equal(Y, Y_ref)


def test_a_graph_is_read_from_plain_code() -> None:
    """Each line is a node with the names it reads; a comprehension inside a line sees the values (the
    line's namespace is its globals); an embedding lookup is recognised from the code; sizes come in."""
    graph = Graph("""
rows = torch.stack([W[i] * k for i in range(2)])   # reads W and the size k
picked = W[Xb]
loss = (rows.sum() + picked.sum()) / n
""", "test graph", first_line=10)
    assert graph.inputs == {"rows": ("W", "k"), "picked": ("W", "Xb"), "loss": ("rows", "picked", "n")}  # not i
    assert set(graph.leaves) == {"W", "k", "Xb", "n"} and graph.consumers("W") == ("rows", "picked")
    assert graph.indexes("W", "picked") == "Xb" and graph.indexes("W", "rows") is None
    W = torch.arange(6.0).view(3, 2)
    out = graph.forward({"W": W}, torch.tensor([0, 2]), torch.tensor([0, 0]), {"k": 3})
    assert float(out["loss"]) == pytest.approx((3 * (0 + 1 + 2 + 3) + (0 + 1 + 4 + 5)) / 2)
    with pytest.raises(GraphError, match=r"the forward pass failed at rows \(test graph, line 10\): NameError"):
        graph.forward({"W": W}, torch.tensor([0]), torch.tensor([0]))  # no size k
