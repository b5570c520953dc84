"""The grader as a wheel, built from the package that is running: what a platform installs.

Every platform bundle carries this wheel, so a course outside the grader's repository is
graded by the same grader that wrote its bundle, with no checkout and no build tool. The
wheel holds the package's modules and the metadata pip needs (name, version, dependencies,
the `ninja-grade` entry point); torch and the other dependencies come from the platform's
package index.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import stat
import zipfile
from pathlib import Path

DISTRIBUTION = "backprop-ninja"
PACKAGE = Path(__file__).resolve().parents[1]  # the grader/ package this module is part of
ENTRY_POINTS = "[console_scripts]\nninja-grade = grader.cli:run\n"
ZIP_DATE = (2026, 1, 1, 0, 0, 0)  # fixed, so the same grader gives the same bytes


class WheelError(Exception):
    """The grader cannot be packed: it is not installed as a distribution."""


def package_files() -> list[tuple[str, Path]]:
    """The grader's modules, as (name in the wheel, file here)."""
    root = PACKAGE.parent
    return [(path.relative_to(root).as_posix(), path) for path in sorted(PACKAGE.rglob("*.py"))
            if "__pycache__" not in path.parts]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata() -> tuple[str, str]:
    """The version, and METADATA's text: the installed distribution's, without its dev extras."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise WheelError(f"the grader is not installed as the {DISTRIBUTION} package, so it cannot be bundled: "
                         "install it (pip install -e . in its checkout) and run this again") from None
    lines = ["Metadata-Version: 2.1", f"Name: {DISTRIBUTION}", f"Version: {dist.version}"]
    if dist.metadata["Summary"]:
        lines.append(f"Summary: {dist.metadata['Summary']}")
    if dist.metadata["Requires-Python"]:
        lines.append(f"Requires-Python: {dist.metadata['Requires-Python']}")
    lines += [f"Requires-Dist: {req}" for req in dist.requires or [] if "extra ==" not in req]
    return dist.version, "\n".join(lines) + "\n"


def grader_wheel() -> tuple[str, bytes]:
    """The wheel's file name and bytes: py3-none-any, the grader package and its metadata."""
    version, metadata = _metadata()
    info = f"{DISTRIBUTION.replace('-', '_')}-{version}.dist-info"
    members = [(name, path.read_bytes()) for name, path in package_files()]
    members += [(f"{info}/METADATA", metadata.encode()),
                (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: ninja-grade\nRoot-Is-Purelib: true\n"
                                  b"Tag: py3-none-any\n"),
                (f"{info}/entry_points.txt", ENTRY_POINTS.encode())]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members) + f"{info}/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in [*members, (f"{info}/RECORD", record.encode())]:
            entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            entry.external_attr = (stat.S_IFREG | 0o644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    return f"{DISTRIBUTION.replace('-', '_')}-{version}-py3-none-any.whl", buffer.getvalue()
