"""--watch: one process grades the file again on every save, says what changed, survives a
half-written save, and ends on Ctrl-C with the last verdict's exit code."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI_TAKING_CTRL_C, ROOT, needs_sigint, wait_for_line

RIGHT = (ROOT / "solutions" / "exercise2.py").read_text()
WRONG = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"  # no / n


@pytest.mark.slow
@needs_sigint
def test_watch_grades_every_save_until_ctrl_c(tmp_path: Path) -> None:
    """Wrong, then right (now passing), then caught mid-save (one line, still watching), then emptied
    (now failing), then right again; Ctrl-C exits 0, the last verdict's code. One process throughout."""
    path = tmp_path / "exercise2.py"
    path.write_text(WRONG)
    process = subprocess.Popen([sys.executable, "-c", CLI_TAKING_CTRL_C, "exercise2", str(path),
                                "--watch"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        assert wait_for_line(process.stdout, "0/1 gradient correct", timeout=120)
        wait_for_line(process.stdout, "watching", timeout=30)
        path.write_text(RIGHT)
        assert wait_for_line(process.stdout, "since the last save:", timeout=60).endswith("now passing dlogits")
        assert wait_for_line(process.stdout, "1/1 gradient correct", timeout=30)
        wait_for_line(process.stdout, "watching", timeout=30)
        path.write_bytes(b"dlogits = F.softmax(logits, 1) # caf\xe9")  # an editor caught half-way, not UTF-8 yet
        assert "(waiting for the next save)" in wait_for_line(process.stdout, f"{path}:", timeout=60)
        wait_for_line(process.stdout, "watching", timeout=30)
        path.write_text("")
        assert wait_for_line(process.stdout, "since the last save:", timeout=60).endswith("now failing dlogits")
        wait_for_line(process.stdout, "watching", timeout=30)
        path.write_text(RIGHT)
        assert wait_for_line(process.stdout, "since the last save:", timeout=60).endswith("now passing dlogits")
        wait_for_line(process.stdout, "watching", timeout=30)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "Traceback" not in rest
