"""Which sandbox grades (unix or portable), and what it protects: the report's `environment.sandbox`
and the note on what this system could not enforce."""

from __future__ import annotations

import contextlib
import os
import sys

try:  # Unix only (the user the child becomes, as root)
    import pwd
except ImportError:  # pragma: no cover - exercised in a subprocess that hides it
    pwd = None  # type: ignore[assignment]

from grader.confined import kernel
from grader.confined.child import portable_limits
from grader.confined.portable import PortableSandbox
from grader.confined.sandbox import Sandbox, SandboxError
from grader.confined.unix import UnixSandbox, unix_sandbox_available
from grader.confined.zygote import Zygote, ZygoteError, adopt
from grader.confined.zygote import start as start_zygote
from grader.courseware.course import Limits

SANDBOX_KINDS = ("auto", "unix", "portable")


def chosen_kind() -> str:
    """The sandbox this process grades in: $NINJA_SANDBOX (set by `ninja-grade --sandbox`), where
    "auto" (the default) is the unix one on Linux and the portable one elsewhere: Windows has no
    fork, and on macOS RLIMIT_AS does not hold and forking a process with torch's threads running
    is fragile."""
    kind = os.environ.get("NINJA_SANDBOX", "auto") or "auto"
    if kind not in SANDBOX_KINDS:
        raise SandboxError(f"NINJA_SANDBOX={kind!r}: expected one of {', '.join(SANDBOX_KINDS)}")
    if kind == "auto":
        return "unix" if sys.platform.startswith("linux") and unix_sandbox_available() else "portable"
    return kind


def prestart(zygote: Zygote | None = None) -> None:
    """Start what the chosen sandbox needs before it is needed (the zygote's import of torch then
    overlaps the grader's own), or take `zygote`, forked for this process (`zygote_for_worker`).
    Quiet: a problem is said when a sandbox is opened."""
    if zygote is not None:
        adopt(zygote)
        return
    with contextlib.suppress(SandboxError, ZygoteError, OSError):
        if chosen_kind() == "unix" and unix_sandbox_available():
            start_zygote()


def zygote_for_worker() -> Zygote | None:
    """For a process about to be forked (a batch's worker): a zygote forked by this process's own, so that
    torch is imported once for every worker. None where the unix sandbox does not grade, or this
    process's zygote cannot fork one: the worker then starts what it needs itself (`prestart`)."""
    with contextlib.suppress(SandboxError, ZygoteError, OSError):
        if chosen_kind() == "unix" and unix_sandbox_available():
            return start_zygote().fork()
    return None


def open_sandbox(source: str, path: str, limits: Limits, world: dict[str, object] | None = None) -> Sandbox:
    """The sandbox chosen for this process (chosen_kind), not yet started: use it as a context manager, on the
    thread that opens it (on Linux its child ends with the thread that started it: the portable child with
    the thread that opened the sandbox, the unix one with its zygote)."""
    kind = chosen_kind()
    return (PortableSandbox if kind == "portable" else UnixSandbox)(source, path, limits, world)


def protections(kind: str | None = None, held: dict[str, str] | None = None) -> dict[str, str]:
    """What confines graded code in a sandbox of `kind`, by protection; an empty value is a protection
    this system does not offer. `held` is what a child said held (its Ready); without it, what this
    system would offer. Goes in every JSON report's environment."""
    kind = kind or chosen_kind()
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    offered = kernel.offered()
    held = held or {}
    can = portable_limits()
    if kind == "unix":
        out = {"sandbox": "unix", "time": "wall clock (grader) and RLIMIT_CPU", "memory": "RLIMIT_AS",
               "processes": "RLIMIT_NPROC 0; its process group is killed", "file size": "RLIMIT_FSIZE",
               "forked from": "a zygote that never holds a truth or the grader's environment"}
    else:
        out = {"sandbox": "portable", "time": "wall clock (grader)" + (" and RLIMIT_CPU" if can["cpu"] else ""),
               "memory": can["memory"] or "the grader watches its memory and kills it over the limit",
               "processes": ("RLIMIT_NPROC 0; " if can["processes"] else "")
               + ("its process group is killed" if hasattr(os, "killpg") else
                  "its process tree is killed" if os.name == "nt" else "it is killed"),
               "file size": can["file size"], "forked from": "a fresh Python of its own"}
    default_files = "chroot to the scratch folder as nobody, no groups" if root and pwd is not None else \
        "a scratch working folder"
    out["files"] = held.get("files", default_files)
    out["landlock"] = held.get("landlock", offered["landlock"])
    out["seccomp"] = held.get("seccomp", offered["seccomp"])
    out["no_new_privs"] = held.get("no_new_privs", "no_new_privs" if kernel.LINUX else "")
    out["protocol"] = "commit before reveal"
    out["autograd"] = "off"
    out["code"] = "static policy; allow-listed builtins, modules and tensor methods; audit hook"
    return out


def limits_note(held: dict[str, str]) -> str:
    """One line on what this system could not enforce, and what that means; "" when everything held."""
    missing = []
    if kernel.LINUX and not held.get("landlock"):
        missing.append("Landlock (Linux 5.13+)")
    if kernel.LINUX and not held.get("seccomp"):
        missing.append("seccomp")
    if not kernel.LINUX:
        missing.append("Landlock and seccomp (Linux only)")
    if not missing:
        return ""
    if "chroot" in held.get("files", ""):
        return f"{' and '.join(missing)} not available here; graded code still ran in an empty chroot as nobody"
    return (f"{' and '.join(missing)} not available here: graded code could read and write what your user can "
            "(grade as root, or on Linux 5.13+, to keep it to its scratch folder)")
