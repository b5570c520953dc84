"""Where a grading's verdicts are made, captured when it grades: they depend on the torch build
(docs/DESIGN.md) and on what confined the code. The report carries it; nothing that renders
the report looks at the machine it renders on."""

from __future__ import annotations

import platform
from typing import Any

import torch

from grader.confined.choice import protections


def captured(held: dict[str, str] | None = None) -> dict[str, Any]:
    """This machine, now: torch, Python, the platform, torch's threads and what confines graded code
    (`held`: what a sandbox's child said held; without it, what this system would offer)."""
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads(), "sandbox": held or protections()}
