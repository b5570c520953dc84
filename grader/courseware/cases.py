"""A course's forward pass, run on one Case, with autograd's gradients beside it.

A Case is one batch: a generator seed and a batch size. The exercise's forward file
(grader/courseware/forward.py) says how the parameters are drawn from that generator, how
the batch is drawn after them, and what the forward pass computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader.courseware.course import CaseSpec, CourseError, Exercise
from grader.courseware.data import Dataset
from grader.courseware.forward import ForwardFile, forward_of
from grader.courseware.graph import Graph


@dataclass(frozen=True)
class Setting:
    """What an exercise is judged in: its forward file and graph, the data, the sizes."""

    forward: ForwardFile
    graph: Graph
    world: dict[str, object]  # the data graded code may read
    sizes: dict[str, int]

    def parameters(self, seed: int, dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor],
                                                                                  torch.Generator]:
        """The parameters drawn from a fresh generator; the same generator then draws the batches."""
        g = torch.Generator().manual_seed(seed)
        return self.forward.parameters(g, self.sizes, dtype), g

    def batch(self, g: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward.batch(g, self.world, batch_size)


def without_gradient(exercise: Exercise, graph: Graph) -> list[str]:
    """The exercise's gradients whose tensor the graph gives no gradient, each said in a sentence."""
    return [f"{g.name} is the gradient of {g.tensor}, but graph {exercise.graph} of {exercise.forward.name} gives "
            f"{g.tensor} no gradient (not computed there, or not on the way to the loss)"
            for g in (*exercise.gradients, *exercise.intermediates)
            if g.tensor not in (*graph.nodes, *graph.leaves) or "loss" not in graph.descendants(g.tensor)]


def setting_of(exercise: Exercise, dataset: Dataset) -> Setting:
    forward, graph = forward_of(exercise)
    problems = without_gradient(exercise, graph)
    if problems:
        raise CourseError(f"{exercise.id}: {problems[0]}")
    world = forward.world(dataset)
    return Setting(forward, graph, world, forward.sizes_for(exercise, world))


@dataclass(frozen=True)
class Case:
    """One forward pass: what the student's code is given, and the true gradients."""

    spec: CaseSpec
    namespace: dict[str, object]  # tensors (detached), sizes: what the submission's code starts from
    truth: dict[str, torch.Tensor]  # tensor name -> d loss / d tensor, from autograd
    graph: Graph
    forward: ForwardFile  # for the course's own diagnoses (fused formulas)

    @property
    def label(self) -> str:
        return self.spec.name

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.namespace.items() if isinstance(v, torch.Tensor)}


def case_from(spec: CaseSpec, params: dict[str, torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor, *,
              setting: Setting) -> Case:
    """Run the setting's forward pass on one batch and let autograd compute every gradient."""
    leaves = {k: p.detach().clone().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        acts = setting.graph.forward(leaves, Xb, Yb, setting.sizes)
        for t in acts.values():
            if t.requires_grad:
                t.retain_grad()
        acts["loss"].backward()  # type: ignore[no-untyped-call]
    truth: dict[str, torch.Tensor] = {}
    for name, t in (*leaves.items(), *acts.items()):
        if name != "loss" and t.grad is not None:
            truth[name] = t.grad.detach().clone()
    return Case(spec, namespace_for(leaves, acts, Xb, Yb, setting.sizes), truth, setting.graph, setting.forward)


def namespace_for(params: dict[str, torch.Tensor], acts: dict[str, torch.Tensor], Xb: torch.Tensor,
                  Yb: torch.Tensor, sizes: dict[str, int], *, copy: bool = True) -> dict[str, object]:
    """What student code is namespace: detached tensors under the forward pass's names, and the sizes.

    copy=False passes the tensors as they are, for a caller whose tensors need no detaching (autograd
    is off there) and that copies them anyway (runner.namespace, in the sandbox's child)."""
    def own(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone() if copy else t

    namespace: dict[str, object] = {name: own(t) for name, t in (*params.items(), *acts.items())}
    n = int(Xb.shape[0])
    namespace.update(sizes)
    namespace.update(Xb=own(Xb), Yb=own(Yb), n=n, batch_size=n)
    return namespace


def build_case(spec: CaseSpec, setting: Setting) -> Case:
    """One case of an exercise without a training run: parameters, then the batch, from the case's seed."""
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    params, g = setting.parameters(spec.seed, dtype)
    Xb, Yb = setting.batch(g, spec.batch_size)
    return case_from(spec, params, Xb, Yb, setting=setting)


def first_case(exercise: Exercise, setting: Setting, cases: tuple[CaseSpec, ...]) -> Case:
    """The case a notebook's set-up and the stubs' shape comments use: the course's first case, or for a
    training exercise its run's first step (the run's parameters, then its first batch)."""
    spec = exercise.training
    return build_case(cases[0] if spec is None else CaseSpec("step 0", spec.seed, spec.batch_size), setting)


def graph_with_shapes(exercise: Exercise, dataset: Dataset,
                      cases: tuple[CaseSpec, ...]) -> tuple[Graph, dict[str, tuple[int, ...]]]:
    """The exercise's graph, and the shape of each of its tensors (the parameters, the batch, every
    node) on the batch first_case uses: what a picture of the graph shows. Only the forward pass
    runs, without autograd, so no true gradient exists here (a sandbox may be forked after it)."""
    setting = setting_of(exercise, dataset)
    spec = cases[0] if exercise.training is None else CaseSpec("step 0", exercise.training.seed,
                                                               exercise.training.batch_size)
    params, g = setting.parameters(spec.seed)
    Xb, Yb = setting.batch(g, spec.batch_size)
    with torch.no_grad():
        acts = setting.graph.forward(params, Xb, Yb, setting.sizes)
    tensors = {**params, **acts, "Xb": Xb, "Yb": Yb}
    return setting.graph, {name: tuple(t.shape) for name, t in tensors.items() if isinstance(t, torch.Tensor)}
