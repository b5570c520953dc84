"""backprop-ninja's grader: `ninja-grade` on the command line, `check` in a notebook.

`import grader` stays cheap; torch loads when something is checked.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"


def check(exercise_id: str, **kwargs: Any) -> Any:
    """Grade this notebook's code for one exercise (see grader.inline.check)."""
    from grader.inline import check as _check  # noqa: PLC0415 - torch only when used

    return _check(exercise_id, **kwargs)


def setup(exercise_id: str, namespace: dict[str, Any], **kwargs: Any) -> None:
    """Define the lecture's forward pass in `namespace` (see grader.inline.setup)."""
    from grader.inline import setup as _setup  # noqa: PLC0415

    _setup(exercise_id, namespace, **kwargs)
