"""A process's resident memory, as this system tells it: what the portable sandbox watches where
the child cannot limit its own memory."""

from __future__ import annotations

import os
import subprocess
import sys


def resident_mb(pid: int) -> int | None:
    """A process's resident memory in MB, where this system says: /proc (Linux), ps (macOS, BSD),
    the process's memory counters (Windows); None where it cannot be read."""
    try:
        if sys.platform.startswith("linux"):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) // 1024
            return None
        if os.name == "posix":
            out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, timeout=5,
                                 check=False)
            return int(out.stdout.strip()) // 1024 if out.stdout.strip() else None
        return _windows_rss_mb(pid)  # pragma: no cover
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _windows_rss_mb(pid: int) -> int | None:  # pragma: no cover - Windows only
    import ctypes  # noqa: PLC0415
    from ctypes import wintypes  # noqa: PLC0415

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in ("PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                                                 "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                                                 "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
    psapi = ctypes.WinDLL("psapi")  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000 | 0x0010, False, pid)  # QUERY_LIMITED_INFORMATION | VM_READ
    if not handle:
        return None
    try:
        counters = Counters()
        counters.cb = ctypes.sizeof(Counters)
        if not psapi.GetProcessMemoryInfo(handle, ctypes.byref(counters), counters.cb):
            return None
        return int(counters.WorkingSetSize) >> 20
    finally:
        kernel32.CloseHandle(handle)
