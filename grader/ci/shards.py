"""One class split over machines that never talk: a deterministic share per shard, and its record.

Shard I of N grades the students whose id hashes to I (sha256 of the id, modulo N), so any
number of machines given the same submissions split them with no coordination, and a
student's shard never depends on who else handed in. Which shard a process is:

1. `--shard I/N`: exactly that; the environment is not read.
2. `--shard N`: the index from the engine that started the process, the first of
   JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), AWS_BATCH_JOB_ARRAY_INDEX (an AWS Batch
   array job), SLURM_ARRAY_TASK_ID (a SLURM job array, counted from SLURM_ARRAY_TASK_MIN).
   Where the engine also says the array's size, it must be N.
3. no `--shard`: an AWS Batch or SLURM array's index and size, where both are set; the whole
   class where no engine index is set. An engine index without a size (Kubernetes) is refused:
   say `--shard N`.

A GitHub Actions matrix sets nothing: its workflow passes `--shard ${{ matrix.shard }}/N`.
Each shard writes, beside its reports, its manifest: the shard, the record it graded with,
the whole class's student ids, the file each id of a name handed in more than once stands for
(its namesakes), and its own share's submission fingerprints. `merge` reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.ci.gradebooks import namesakes_of
from grader.files import write_atomic

MANIFEST_KIND = "ninja-grade batch shard"
MANIFEST_GLOBS = ("ninja-batch.manifest", "ninja-shard-*-of-*.manifest")  # a whole class's, a shard's
ENGINES = (  # (index variable, size variable or None, the engine)
    ("JOB_COMPLETION_INDEX", None, "a Kubernetes Indexed Job"),
    ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "an AWS Batch array job"),
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "a SLURM job array"),
)
SHARD_RE = re.compile(r"(?:(\d+)/)?(\d+)")


class ShardError(Exception):
    """The shard asked for cannot be used; one sentence."""


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    source: str = ""  # where the index came from: "--shard", an engine's variable, "" for the whole class

    @property
    def whole(self) -> bool:
        return self.count == 1

    def takes(self, student: str) -> bool:
        return self.whole or share_of(student, self.count) == self.index

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def manifest_name(self) -> str:
        return "ninja-batch.manifest" if self.whole else f"ninja-shard-{self.index}-of-{self.count}.manifest"

    @property
    def gradebook_name(self) -> str:
        return "gradebook.csv" if self.whole else f"gradebook-shard-{self.index}-of-{self.count}.csv"


WHOLE = Shard()  # the whole class, in one process


def share_of(student: str, count: int) -> int:
    """The shard a student id belongs to among `count`: stable across machines, Pythons and runs."""
    digest = hashlib.sha256(student.encode("utf-8", errors="surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


def _number(env: Mapping[str, str], name: str) -> int:
    value = env[name].strip()
    if not value.isdigit():
        raise ShardError(f"{name}={env[name]!r} is not a whole number")
    return int(value)


def _from_engine(env: Mapping[str, str]) -> tuple[int, int | None, str] | None:
    """The index an engine set (counted from 0), its array's size where it says, and the variable."""
    for index_var, size_var, engine in ENGINES:
        if not env.get(index_var, "").strip():
            continue
        index = _number(env, index_var)
        size = _number(env, size_var) if size_var and env.get(size_var, "").strip() else None
        if index_var == "SLURM_ARRAY_TASK_ID":
            low = _number(env, "SLURM_ARRAY_TASK_MIN") if env.get("SLURM_ARRAY_TASK_MIN", "").strip() else 0
            step = env.get("SLURM_ARRAY_TASK_STEP", "1").strip() or "1"
            high = _number(env, "SLURM_ARRAY_TASK_MAX") if env.get("SLURM_ARRAY_TASK_MAX", "").strip() else None
            if step != "1" or (high is not None and size is not None and high - low + 1 != size):
                raise ShardError(f"{engine} with a step or gaps (SLURM_ARRAY_TASK_STEP={step}) cannot number its "
                                 "shards: submit it as --array=0-(N-1), or pass --shard I/N yourself")
            index -= low
        return index, size, index_var
    return None


def shard_from(option: str | None, env: Mapping[str, str]) -> Shard:
    """The shard this process grades (the precedence in this module's docstring); ShardError says why not."""
    engine = _from_engine(env) if option is None or "/" not in option else None
    if option is not None:
        found = SHARD_RE.fullmatch(option.strip())
        if found is None:
            raise ShardError(f"--shard {option!r}: expected I/N (shard I of N, counted from 0) or N (the index "
                             "from JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX or SLURM_ARRAY_TASK_ID)")
        count = int(found[2])
        if count < 1:
            raise ShardError(f"--shard {option}: there must be at least 1 shard")
        if found[1] is not None:
            return _checked(Shard(int(found[1]), count, "--shard"))
        if engine is None:
            raise ShardError(f"--shard {count} needs this shard's index: none of JOB_COMPLETION_INDEX, "
                             "AWS_BATCH_JOB_ARRAY_INDEX, SLURM_ARRAY_TASK_ID is set; pass --shard I/{count}")
        index, size, variable = engine
        if size is not None and size != count:
            raise ShardError(f"--shard {count}, but the array has {size} jobs (from {variable}'s engine): every "
                             f"student of the shards beyond would be lost; pass --shard {size}")
        return _checked(Shard(index, count, variable))
    if engine is None:
        return Shard()
    index, size, variable = engine
    if size is None:
        raise ShardError(f"{variable} is set ({env[variable]}) but not how many shards there are: pass --shard N "
                         "(the Job's completions), or --shard 0/1 to grade the whole class here")
    return _checked(Shard(index, size, variable))


def _checked(shard: Shard) -> Shard:
    if not 0 <= shard.index < shard.count:
        raise ShardError(f"shard index {shard.index} (from {shard.source}) is not below {shard.count}: shards are "
                         f"counted 0 to {shard.count - 1}")
    return shard


def write_manifest(out: Path, shard: Shard, record: dict[str, Any], students: list[str], share: dict[str, str], *,
                   complete: bool, repeated: dict[str, str] | None = None,
                   paths: Mapping[str, str] | None = None) -> Path:
    """The shard's manifest in `out`: written before its grading (complete: false) and after it.
    `repeated` is the class's ids made from a name met before, and that name (batch.repeated_names);
    `paths` the whole class's id -> the path handed in, of which the namesakes' are kept."""
    path = out / shard.manifest_name
    write_atomic(path, json.dumps({
        "kind": MANIFEST_KIND, "shard": [shard.index, shard.count], "complete": complete,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "graded_with": record, "class": students,
        "share": share, "repeated": repeated or {}, "namesakes": namesakes(paths or {}, repeated or {})}))
    return path


def namesakes(paths: Mapping[str, str], repeated: Mapping[str, str]) -> dict[str, str]:
    """Id -> path for every id of a name more than one submission was handed in under (the first keeps the
    name, the others are made from it): where shards may disagree about which file an id is. The others'
    paths are left out: their id is their name, and only a namesake's path tells which file it is."""
    of_a_name = namesakes_of(paths, dict(repeated))
    return {s: p for s, p in paths.items() if s in of_a_name}
