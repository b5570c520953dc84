"""Find one exercise's code in a notebook (or a script transcribing one), without running it.

Students' notebooks follow the lecture's layout: data and forward-pass cells, then
exercise 1's gradients (in one cell or several), then cells that reassign `dlogits`
(exercise 2) and `dhprebn` (exercise 3), then the training loop (exercise 4), with
`cmp` calls, prints, plots and magics in between. For one exercise this module:

1. splits the notebook into sections, by the lecture's `# Exercise N` markers when there
   are any, else by what each cell computes;
2. keeps, from the cells before the exercises and the exercise's own section, only the
   statements its gradients depend on (a backward slice): so the forward pass, `cmp`
   calls, prints and plots are left out, and everything the grader provides (the forward
   tensors, the parameters, the batch) comes from the grader, never from the notebook;
3. reads `cmp('counts_sum_inv', dcsi, counts_sum_inv)` calls to learn renamed gradients.

The result is a plain program, graded exactly as a .py submission is, with a map from
its lines back to the notebook's cells.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from grader.intake.submission import (
    MAX_STATEMENTS,
    TOO_DEEP,
    LeftOut,
    Location,
    assigned_names,
    parse,
    rebound_names,
    too_many,
    without_broken_lines,
)

if TYPE_CHECKING:
    from grader.courseware.course import Course

MAX_CELLS = 2000  # the lecture's notebook has some 150; each cell is parsed and sorted into an exercise on its own
MODULES = frozenset({"torch", "F"})  # what every forward pass's code and every exercise has imported


@dataclass(frozen=True)
class Section:
    """What one exercise's cells look like in a notebook, from course.yaml."""

    gradients: frozenset[str]  # the gradients it grades (not its intermediates)
    training: bool  # its code is a training loop
    given_gradients: frozenset[str] = frozenset()  # gradients handed to it (dhpreact)
    marks: tuple[str, ...] = ()  # names that mark a cell as this exercise's (loss_fast)


@dataclass(frozen=True)
class Layout:
    """Where a course's exercises sit in a notebook that follows its lecture, and what the grader
    provides (the forward pass's tensors, the parameters, the batch, the sizes, the data, torch):
    such names are never loaded from the notebook."""

    provided: frozenset[str]
    computed: frozenset[str]  # what the forward passes compute: a script assigning them transcribes one
    data: frozenset[str]  # the data set's names (words, Xtr): a script assigning them transcribes the notebook
    sections: tuple[Section, ...]  # exercise N is sections[N - 1]

    @property
    def atoms(self) -> frozenset[str]:
        """The gradients of the exercises that are worked atom by atom (several gradients, no training)."""
        return frozenset().union(*(s.gradients for s in self.sections if not s.training and len(s.gradients) > 1))

    @property
    def fused(self) -> dict[int, Section]:
        """The exercises of one gradient, by number: a fused formula (dlogits in one go)."""
        return {i + 1: s for i, s in enumerate(self.sections) if not s.training and len(s.gradients) == 1}


@functools.cache  # per course, per process: it loads the forward files
def layout_of(course: Course) -> Layout:
    """The course's layout in a notebook, from its exercises and their forward files."""
    from grader.courseware.forward import load_forward  # noqa: PLC0415 - torch, only when a notebook is read

    provided: set[str] = set(MODULES) | {"Xb", "Yb", "n", "batch_size"}
    computed: set[str] = set()
    data: set[str] = set()
    sections = []
    for exercise in course.exercises:
        forward = load_forward(exercise.forward)
        graph = forward.graph(exercise.graph)
        computed |= set(graph.nodes)
        provided |= set(graph.nodes) | set(graph.leaves) | set(forward.sizes) | {k for k, _ in exercise.sizes}
        data |= forward.data_names
        handed = frozenset(h.name for h in exercise.given_gradients)
        sections.append(Section(frozenset(exercise.gradient_names), exercise.training is not None, handed,
                                exercise.marks))
    return Layout(frozenset(provided | data), frozenset(computed), frozenset(data), tuple(sections))


# "# Exercise 2: ..." as a comment line or a markdown heading; not "(as in exercise 2)".
MARKER = re.compile(r"^\s*#+\s*exercise\s*(\d)\b", re.IGNORECASE | re.MULTILINE)
TRAINING_SPLIT = re.compile(r"^[XxYy]_?tr(ain)?$")  # Xtr, ytr, X_train, Ytrain: what a batch is drawn from
NEWLINE = re.compile(r"\r\n|\r|\n")
MAGIC_LINE = re.compile(r"^\s*([%!?]|\w+\s*=\s*[%!])|^\s*[\w.]+\s*\?{1,2}\s*$")  # %magic, !shell, ?help, obj?
TIMING_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


@dataclass(frozen=True)
class Cell:
    number: int  # as a person counts them: 1 for the first cell
    kind: str  # "code" or "markdown"
    source: str  # for code: Python with magics turned into `pass`, line for line
    count: int | None = None  # the notebook's execution count: when the kernel last ran it


@dataclass(frozen=True)
class Extracted:
    source: str  # the program to grade
    origins: tuple[Location, ...]  # for each line of `source`: its cell and its line there
    renames: dict[str, str]  # student's name -> gradient name, from cmp calls
    notes: tuple[str, ...] = ()
    syntax_error: str | None = None  # a cell of the exercise's own that does not parse, even line by line
    left_out: tuple[LeftOut, ...] = ()  # lines of its own cells that do not parse, each left out on its own


def clean_code(source: str) -> str | None:
    """A cell as IPython runs it: magics, shell and help lines become `pass` and the indentation
    common to every line is removed (line numbers stay); None for a cell of another language."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if not lines[0].lstrip().startswith(TIMING_CELL_MAGICS):
            return None  # %%bash, %%html, ...: not Python
        lines = ["pass", *lines[1:]]
    return textwrap.dedent("\n".join(_magic_free(line) for line in lines))


def _magic_free(line: str) -> str:
    if MAGIC_LINE.match(line):
        return line[: len(line) - len(line.lstrip())] + "pass"
    return line


def script_cells(source: str) -> list[Cell]:
    """A script transcribing a notebook, cut into cells at `# %%` or `# Exercise N` lines."""
    cells: list[list[str]] = [[]]
    for line in source.splitlines():
        stripped = line.strip()
        marker = stripped.startswith("# %%") or MARKER.match(stripped)
        if marker and not line[:1].isspace():
            cells.append([])
        cells[-1].append(line)
    return [Cell(i + 1, "code", "\n".join(lines)) for i, lines in enumerate(cells) if any(x.strip() for x in lines)]


def looks_like_transcript(tree: ast.Module, layout: Layout) -> bool:
    """A script that does the forward pass itself (it assigns what the forward pass computes, or
    loads the data), rather than an exercise file."""
    for node in tree.body:
        for target in getattr(node, "targets", []):
            if isinstance(target, ast.Name) and target.id in layout.computed | layout.data:
                return True
    return False


def _assigned(node: ast.AST) -> set[str]:
    return set(assigned_names(node)) if isinstance(node, ast.stmt) else set()


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _training_loop(node: ast.stmt, names: frozenset[str]) -> list[ast.stmt] | None:
    """The body of the loop (inside `with torch.no_grad():` or not) that computes several of
    the gradients: a training loop, not exercise 1's loop over Xb for dC."""
    if isinstance(node, ast.With):
        for inner in node.body:
            found = _training_loop(inner, names)
            if found is not None:
                return found
    if isinstance(node, (ast.For, ast.While)):
        assigned = set().union(*(_assigned(s) for s in node.body)) if node.body else set()
        if len(assigned & names) >= 2:
            return node.body
    return None


def section_of(cell: Cell, tree: ast.Module | None, current: int, layout: Layout) -> int:
    """Which exercise a code cell without a marker belongs to, from what it computes."""
    if tree is None:
        return current
    for number, section in enumerate(layout.sections, start=1):
        if section.training and any(_training_loop(node, section.gradients) for node in tree.body):
            return number
    assigned = set().union(*(_assigned(node) for node in tree.body)) if tree.body else set()
    fused = layout.fused
    lone = frozenset().union(*(s.gradients for s in fused.values()))
    atoms = assigned & layout.atoms - lone
    if len(atoms) >= 2:
        return next((i for i, s in enumerate(layout.sections, start=1) if len(atoms & s.gradients) >= 2), current)
    # A lone fused gradient (dlogits) computed in one go, from the forward pass and what the exercise is
    # given, is that exercise's; from the other gradients (dnorm_logits) it is the atom-by-atom one's.
    used = _loads(tree) & layout.atoms
    for number, section in fused.items():
        marked = any(re.search(rf"\b{re.escape(mark)}\b", cell.source) for mark in section.marks)
        outside = used - section.gradients - section.given_gradients
        if marked or (assigned & section.gradients and not atoms and not outside):
            return number
    return current


def split_sections(cells: list[Cell], layout: Layout) -> dict[int, list[Cell]]:
    """Exercise number -> its cells; 0 holds the cells before the first exercise.

    A `# Exercise N` comment at the top of a code cell, or a markdown heading naming it,
    opens section N; a cell without one opens a later exercise when what it computes says so
    (the training loop, a lone fused dlogits or dhprebn), else it continues the current one.
    """
    sections: dict[int, list[Cell]] = {0: []}
    current = 0
    for cell in cells:
        if cell.kind == "markdown":
            match = MARKER.search(cell.source)
            if match:
                current = int(match.group(1))
            continue
        match = MARKER.search(_leading_comments(cell.source))
        # No marker: what the cell computes may still open a later exercise.
        current = int(match.group(1)) if match else max(current, section_of(cell, _parse(cell.source), current, layout))
        sections.setdefault(current, []).append(cell)
    return sections


def _leading_comments(source: str) -> str:
    lines = []
    for line in source.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def _parse(source: str) -> ast.Module | None:
    try:
        return parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def renames_from_batch(trees: list[ast.Module], provided: frozenset[str]) -> dict[str, str]:
    """The lecture's batch line under other names, `xb, yb = Xtr[ix], Ytr[ix]`: xb is the grader's
    Xb and yb its Yb (the grader provides the batch; the data set never enters the program)."""
    renames: dict[str, str] = {}
    for tree in trees:
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple)
                    and len(node.targets[0].elts) == len(node.value.elts) == 2):
                continue
            for target, value in zip(node.targets[0].elts, node.value.elts, strict=True):
                if (isinstance(target, ast.Name) and target.id not in provided and isinstance(value, ast.Subscript)
                        and isinstance(value.value, ast.Name) and isinstance(value.slice, ast.Name)
                        and TRAINING_SPLIT.match(value.value.id)):
                    renames[target.id] = "Xb" if value.value.id[0] in "Xx" else "Yb"
    return renames


def renames_from_cmp(trees: list[ast.Module], wanted: frozenset[str]) -> dict[str, str]:
    """`cmp('counts_sum_inv', dcsi, counts_sum_inv)` says dcsi holds dcounts_sum_inv."""
    renames: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cmp"
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and isinstance(node.args[1], ast.Name)):
                target, name = "d" + node.args[0].value, node.args[1].id
                if target in wanted and name != target and name not in wanted:
                    renames[name] = target
    return renames


class _Rename(ast.NodeTransformer):
    def __init__(self, renames: dict[str, str]) -> None:
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.renames:
            return ast.copy_location(ast.Name(self.renames[node.id], node.ctx), node)
        return node


@dataclass(frozen=True)
class _Piece:
    node: ast.stmt
    cell: Cell
    text: str


def _pieces(cell: Cell, tree: ast.Module, wanted: frozenset[str], descend: bool) -> list[_Piece]:
    nodes: list[ast.stmt] = []
    for node in tree.body:
        body = _training_loop(node, wanted) if descend else None
        nodes.extend(body if body is not None else [node])
    lines = _lines(cell.source)  # once per cell: ast.get_source_segment splits the whole cell at every call
    return [_Piece(node, cell, textwrap.dedent(_segment(lines, node) or ast.unparse(node))) for node in nodes]


def _lines(source: str) -> list[str]:
    """The source's lines with their ends, cut where Python's tokenizer cuts them (not at a form feed)."""
    lines, start = [], 0
    for end in NEWLINE.finditer(source):
        lines.append(source[start:end.end()])
        start = end.end()
    return [*lines, source[start:]] if start < len(source) else lines


def _segment(lines: list[str], node: ast.stmt) -> str:
    """ast.get_source_segment(source, node, padded=True), from the source's lines."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    start, end = node.col_offset, node.end_col_offset
    if end is None:
        return ast.unparse(node)
    if first == last:
        return lines[first].encode()[start:end].decode()
    head = lines[first].encode()
    padding = "".join(c if c in "\f\t" else " " for c in head[:start].decode())
    return "".join([padding + head[start:].decode(), *lines[first + 1:last], lines[last].encode()[:end].decode()])


def backward_slice(pieces: list[_Piece], wanted: frozenset[str], provided: frozenset[str]) -> list[_Piece]:
    """The statements the wanted gradients depend on, definitions first."""
    needed = set(wanted)
    kept: list[_Piece] = []
    for piece in reversed(pieces):
        assigned = _assigned(piece.node)
        if assigned & needed:
            kept.append(piece)
            loads = _loads(piece.node)
            # A name bound afresh here (`ix = torch.ones(...)`) needs no earlier definition: an older
            # `ix` (the lecture's batch index) is shadowed. One changed in place (`x += ...`,
            # `x[i] = ...`) still needs the lines before it.
            needed -= rebound_names(piece.node) - loads
            # Names the statement binds itself (a loop's `k`, `ix`) are not needed from before it.
            needed |= loads - provided - assigned
    kept.reverse()
    definitions = [p for p in kept if isinstance(p.node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))]
    return definitions + [p for p in kept if p not in definitions]


def in_the_order_they_ran(own: list[Cell], exercise: int) -> tuple[list[Cell], str | None]:
    """An exercise's cells as the kernel ran them, where the execution counts say so unambiguously
    (every cell run, each once); else as they stand. With a note when the two orders differ."""
    counts = [c.count for c in own]
    ran = [c.count for c in own if c.count is not None]
    if ran == sorted(ran):
        return own, None  # in order, as far as the counts tell
    if None not in counts and len(set(counts)) == len(counts):
        order = sorted(own, key=lambda c: c.count or 0)
        ran_as = ", ".join(f"cell {c.number} [{c.count}]" for c in order)
        return order, (f"exercise {exercise}'s cells ran in another order than they stand; graded in the order they "
                       f"ran, as your kernel saw them: {ran_as} (run all from the top to grade them as they stand)")
    return own, (f"exercise {exercise}'s cells ran in another order than they stand, and not every one was run, so "
                 "they are graded as they stand; if a gradient fails only here, restart and run all")


def extract(cells: list[Cell], exercise: int, wanted: frozenset[str], layout: Layout) -> Extracted | None:
    """The program for one exercise, or None when the notebook has no code for it."""
    if len(cells) > MAX_CELLS:  # a notebook is refused before it is read (read_cells); a script is cut here
        return Extracted("", (), {}, (), f"the code is cut into {len(cells):,} cells (at `# %%` or `# Exercise N` "
                                         f"lines), over the {MAX_CELLS:,} a submission may have")
    sections = split_sections(cells, layout)
    own, order_note = in_the_order_they_ran(sections.get(exercise, []), exercise)
    trees: list[tuple[Cell, ast.Module]] = []
    skipped: list[str] = []
    left_out: list[LeftOut] = []
    for cell in (*sections[0], *own):
        before = len(trees)
        try:
            trees.append((cell, parse(cell.source)))
        except (RecursionError, MemoryError):
            if cell in own:
                return Extracted("", (), {}, (), f"cell {cell.number}: {TOO_DEEP}")
            skipped.append(f"cell {cell.number} (before the exercises) is nested too deeply to parse and was left out")
        except SyntaxError as exc:
            recovered = without_broken_lines(cell.source) if cell in own else None
            if recovered is not None:  # the exercise's own cell: only its broken lines are left out
                fixed, broken = recovered
                cell = replace(cell, source=fixed)  # noqa: PLW2901
                trees.append((cell, parse(fixed)))
                left_out += [LeftOut(Location(cell.number, n), names, why) for n, why, names in broken]
            elif cell in own:
                where = Location(cell.number, exc.lineno).described if exc.lineno else f"cell {cell.number}"
                return Extracted("", (), {}, (), f"syntax error in {where}: {exc.msg}")
            else:
                skipped.append(f"cell {cell.number} (before the exercises) does not parse and was left out")
        except ValueError:
            skipped.append(f"cell {cell.number} cannot be read and was left out")
        if len(trees) > before and len(trees[-1][1].body) > MAX_STATEMENTS:  # each is cut out on its own
            if cell in own:
                return Extracted("", (), {}, (), f"cell {cell.number}: {too_many(len(trees[-1][1].body))}")
            skipped.append(f"cell {cell.number} (before the exercises) has over {MAX_STATEMENTS:,} statements "
                           "and was left out")
            trees.pop()
    own = [next((c for c, _ in trees if c.number == cell.number), cell) for cell in own]
    batch = renames_from_batch([t for _, t in trees], layout.provided)
    renames = {**batch, **renames_from_cmp([t for c, t in trees if c in own], wanted)}
    pieces: list[_Piece] = []
    for cell, parsed in trees:
        tree = ast.fix_missing_locations(_Rename(renames).visit(parsed)) if renames else parsed
        for piece in _pieces(cell, tree, wanted, descend=layout.sections[exercise - 1].training and cell in own):
            text = ast.unparse(piece.node) if renames else piece.text
            pieces.append(_Piece(piece.node, cell, text))
    own_pieces = [p for p in pieces if p.cell in own]
    if not any(_assigned(p.node) & wanted for p in own_pieces):
        return None
    kept = backward_slice(pieces, wanted, layout.provided)
    lines: list[str] = []
    origins: list[Location] = []
    for piece in kept:
        first = getattr(piece.node, "lineno", 1)
        for offset, line in enumerate(piece.text.splitlines()):
            lines.append(line)
            origins.append(Location(piece.cell.number, first + offset))
    read_as = [f"read {name} as {target}, " + ("the grader's batch, as your batch line says"
                                               if batch.get(name) == target else "as your cmp call says")
               for name, target in renames.items()]
    notes = [*([order_note] if order_note else []), *skipped, *read_as]
    return Extracted("\n".join(lines) + "\n", tuple(origins), renames, tuple(notes), left_out=tuple(left_out))
