"""Join the outputs of a class's shards into one: every student's report, checked against its shard.

Each shard's folder holds its reports and its manifest (grader/ci/shards.py). Merging refuses
shards that cannot be one class's grading: graded as other exercises, by other grader
versions or code, with other courses, data, limits or case secrets, over other lists of
students or other files for an id made from a repeated name, or split into other numbers of
shards. Otherwise every student of the class gets the report their shard
graded from the submission its manifest recorded, and the students left without one (a shard
not given or not finished, a grader fault) or with several (a shard given twice) are listed.
A report that does not match its manifest's record (left in a reused folder by an earlier
run), or that does not read whole as a report whose score and verdict follow from its
gradients, is never taken: its student is listed as having no report, with why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.ci.batch import report_name
from grader.ci.record import report_problem
from grader.ci.shards import MANIFEST_GLOBS, MANIFEST_KIND, share_of
from grader.reporting.formats import one_line


class MergeError(Exception):
    """The folders cannot be merged into one class's grading; one sentence."""


@dataclass(frozen=True)
class ShardOutput:
    folder: Path
    manifest: Path
    index: int
    count: int
    complete: bool
    graded_with: dict[str, Any]
    students: tuple[str, ...]  # the whole class, as the shard saw it
    share: dict[str, str]  # this shard's students -> their submission's fingerprint
    repeated: dict[str, str] = field(default_factory=dict)  # an id made from a name met before -> that name
    namesakes: dict[str, str] = field(default_factory=dict)  # each id of a name handed in twice -> its path

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class Merged:
    students: tuple[str, ...]
    count: int  # shards in the split
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeated: dict[str, str] = field(default_factory=dict)  # as the shards recorded it (batch.repeated_names)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (student, why)
    duplicates: list[tuple[str, list[str]]] = field(default_factory=list)  # (student, the folders that graded them)


def _read_manifest(path: Path) -> ShardOutput:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MergeError(f"cannot read the shard manifest {path} ({type(exc).__name__})") from None
    shard = data.get("shard") if isinstance(data, dict) else None
    ok = (isinstance(data, dict) and data.get("kind") == MANIFEST_KIND and isinstance(shard, list) and len(shard) == 2
          and all(type(n) is int for n in shard) and 0 <= shard[0] < shard[1]
          and isinstance(data.get("graded_with"), dict) and isinstance(data.get("class"), list)
          and all(isinstance(s, str) for s in data["class"]) and isinstance(data.get("share"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in data["share"].items())
          and isinstance(data.get("repeated", {}), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in data.get("repeated", {}).items())
          and isinstance(data.get("namesakes", {}), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in data.get("namesakes", {}).items()))
    if not ok or not isinstance(shard, list):
        raise MergeError(f"{path} is not a shard manifest of ninja-grade batch")
    return ShardOutput(path.parent, path, shard[0], shard[1], data.get("complete") is True, data["graded_with"],
                       tuple(data["class"]), dict(data["share"]), dict(data.get("repeated", {})),
                       dict(data.get("namesakes", {})))


def read_outputs(folders: list[Path]) -> list[ShardOutput]:
    """Every shard manifest in the folders, in the order given."""
    outputs: list[ShardOutput] = []
    for folder in folders:
        if not folder.is_dir():
            raise MergeError(f"{folder} is not a folder: give the --out folders the shards wrote")
        found = sorted({p for pattern in MANIFEST_GLOBS for p in folder.glob(pattern)})
        if not found:
            raise MergeError(f"{folder} holds no shard manifest: give the --out folder of a ninja-grade batch run "
                             "(this grader's; an older one wrote none)")
        outputs += [_read_manifest(path) for path in found if path.resolve() not in {o.manifest.resolve()
                                                                                    for o in outputs}]
    return outputs


def _class_said(seen: tuple[tuple[str, ...], tuple[tuple[str, str], ...]]) -> str:
    students, repeated = seen
    listed = "\n".join([*students, *(f"{k}\t{v}" for k, v in repeated)])
    digest = hashlib.sha256(listed.encode("utf-8", errors="surrogateescape")).hexdigest()
    return f"{len(students)} students, list {digest[:8]}"


CHECKS: tuple[tuple[str, Callable[[ShardOutput], Any], Callable[[Any], str]], ...] = (
    ("graded as different exercises", lambda o: o.graded_with.get("exercise"), str),
    ("graded by different grader versions or code", lambda o: o.graded_with.get("grader"), lambda v: f"grader {v}"),
    ("graded under different case secrets", lambda o: o.graded_with.get("cases"), lambda v: f"secret {v}"),
    ("graded with different courses", lambda o: o.graded_with.get("course"), lambda v: f"course {str(v)[7:19]}"),
    ("graded with different data or limits", lambda o: (o.graded_with.get("data"), o.graded_with.get("limits")),
     lambda v: f"data {str(v[0])[7:19]}, limits {v[1]}"),
    ("split into different numbers of shards", lambda o: o.count, lambda v: f"{v} shard{'s' * (v != 1)}"),
    ("run over different submissions", lambda o: (tuple(sorted(o.students)), tuple(sorted(o.repeated.items()))),
     _class_said),  # in any order: the arguments' order is the shell's, and may differ between machines
)


def check_alike(outputs: list[ShardOutput], course_digest: str) -> None:
    """Refuse outputs that are not shards of one grading of one class with this course."""
    first = outputs[0]
    for what, value, said in CHECKS:
        for other in outputs[1:]:
            if value(other) != value(first):
                raise MergeError(f"shard {first.name} ({first.folder}) and shard {other.name} ({other.folder}) were "
                                 f"{what} ({said(value(first))}; {said(value(other))}): grade every shard the same "
                                 "way, then merge")
    for other in outputs[1:]:
        _check_namesakes(first, other)
    if first.graded_with.get("course") != course_digest:
        raise MergeError(f"the shards in {first.folder} were graded with another version of the course than this "
                         "one: merge with the course they were graded with (--course)")


def _check_namesakes(first: ShardOutput, other: ShardOutput) -> None:
    """Refuse shards that gave an id made from a name handed in more than once to different files: one
    file's grade would go to two ids, and another file would be graded by no one."""
    differ = sorted(s for s in first.namesakes.keys() | other.namesakes.keys()
                    if first.namesakes.get(s) != other.namesakes.get(s))
    if differ:
        shown = ", ".join(map(one_line, differ[:6])) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise MergeError(f"shard {first.name} ({first.folder}) and shard {other.name} ({other.folder}) disagree "
                         f"about which submission {shown} {'is' if len(differ) == 1 else 'are'} (files of one name in "
                         "different folders: one handed in or withdrawn between their runs, or the class given "
                         "by other paths): run every shard over the same files, then merge")


def merge(outputs: list[ShardOutput], course_digest: str, points: Mapping[str, float] | None = None) -> Merged:
    """One class's reports from its shards' outputs; MergeError when they cannot be merged. `points`
    (gradient -> points, the course's) is what each report's gradients are checked against, where given."""
    if not outputs:
        raise MergeError("no shard outputs to merge")
    check_alike(outputs, course_digest)
    first = outputs[0]
    merged = Merged(first.students, first.count, repeated=first.repeated)
    given = {o.index for o in outputs}
    for student in first.students:
        index = share_of(student, first.count)
        found = []
        refused = ""
        for output in outputs:
            submission = output.share.get(student)
            if submission is None:
                continue
            report, problem = _report(output, student, submission, points)
            if report is not None:
                found.append((output, report))
            elif problem:
                refused = refused or (f"its report in {output.folder} is not taken: {problem}; run shard "
                                      f"{index}/{first.count} again")
        if not found:
            why = refused or (f"shard {index}/{first.count} not among the folders given" if index not in given else
                              f"not graded by shard {index}/{first.count}: run it again")
            merged.missing.append((student, why))
            continue
        merged.reports[student] = found[0][1]
        if len(found) > 1:
            merged.duplicates.append((student, [str(o.folder) for o, _ in found]))
    return merged


def _report(output: ShardOutput, student: str, submission: str,
            points: Mapping[str, float] | None) -> tuple[dict[str, Any] | None, str]:
    """The student's report in the shard's folder, if it was graded from the record its manifest holds
    and reads whole as a report; else None, and why where it is there but not one to take."""
    try:
        report = json.loads((output.folder / report_name(student)).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, ""
    if not isinstance(report, dict) or report.get("student") != student:
        return None, ""
    if report.get("graded_from") != {**output.graded_with, "submission": submission}:
        return None, ""
    problem = report_problem(report, points)
    return (None, problem) if problem else (report, "")
