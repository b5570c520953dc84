"""Find names.txt, the makemore data set, or fetch it once and check it.

Lookup order (docs/DESIGN.md): --data PATH, $NINJA_DATA, ./names.txt, the user cache,
then a download from makemore's public address into the cache, checked by sha256.
With none of these, the grader falls back to a synthetic batch and says so.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from grader.files import write_atomic

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
DOWNLOAD_TIMEOUT_S = 10
MAX_NAMES_BYTES = 16 * 1024 * 1024  # the real file is 228 kB; anything huge is not it
LETTERS = "abcdefghijklmnopqrstuvwxyz"  # the lecture's alphabet; a forward file may name another (ALPHABET)


class DataError(Exception):
    """names.txt was named explicitly but cannot be used."""


@dataclass(frozen=True)
class Dataset:
    """The words to build batches from, and where they came from."""

    words: tuple[str, ...]
    source: str  # a path, or "synthetic"
    note: str = ""  # said to the student when the data is not the lecture's

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backprop-ninja"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_words(raw: bytes, where: str, alphabet: str = LETTERS) -> tuple[str, ...]:
    """Split names.txt into words, refusing anything that is not names written in `alphabet`, and a
    file that leaves a letter of it out (the vocabulary would be smaller than the course's)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    words = tuple(text.split())
    if not words:
        raise DataError(f"{where} holds no names")
    letters = frozenset(alphabet)
    bad = next((w for w in words if not letters.issuperset(w)), None)
    if bad is not None:
        what = "a lowercase name" if alphabet == LETTERS else f"a name in the course's alphabet ({alphabet})"
        raise DataError(f"{where} is not a names.txt: {bad[:40]!r} is not {what}")
    if len(set("".join(words))) != len(letters):
        raise DataError(f"{where} does not use all {len(letters)} letters, so the vocabulary is not "
                        f"{len(letters) + 1}")
    return words


def read_names(path: Path, alphabet: str = LETTERS) -> Dataset:
    """Read an explicitly named names.txt; a different file is used, with a note."""
    try:
        if path.stat().st_size > MAX_NAMES_BYTES:
            raise DataError(f"{path} is {path.stat().st_size} bytes; names.txt is 228 kB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no names.txt at {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not names.txt") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    words = parse_words(raw, str(path), alphabet)
    note = ""
    if sha256_of(raw) != NAMES_SHA256:
        note = f"{path} is not the lecture's names.txt (sha256 differs); numbers will differ"
    return Dataset(words, str(path), note)


def download(dest: Path) -> None:
    """Fetch names.txt into dest, atomically, only if its sha256 is the lecture's."""
    with urllib.request.urlopen(NAMES_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
        raw = response.read(MAX_NAMES_BYTES + 1)
    if sha256_of(raw) != NAMES_SHA256:
        raise DataError(f"the names.txt downloaded from {NAMES_URL} has the wrong sha256")
    write_atomic(dest, raw)


def synthetic_words(alphabet: str = LETTERS) -> tuple[str, ...]:
    """Deterministic stand-in names: every letter used, so the vocabulary is still the course's."""
    size = len(alphabet)
    words = []
    for i in range(2000):
        length = 3 + (i * 7) % 6
        words.append("".join(alphabet[(i * 11 + k * (i % 5 + 3)) % size] for k in range(length)))
    return tuple(words)


def find_names(explicit: str | os.PathLike[str] | None = None, *, allow_download: bool = True,
               alphabet: str = LETTERS) -> Dataset:
    """Return the data set, looking where docs/DESIGN.md says, in that order; its names are written
    in `alphabet` (the course's forward file says which: forward.alphabet_of).

    $NINJA_OFFLINE (any value) turns the download off, as allow_download=False does.
    """
    if explicit is not None:
        return read_names(Path(explicit), alphabet)
    env = os.environ.get("NINJA_DATA")
    if env:
        try:
            return read_names(Path(env), alphabet)
        except DataError as exc:
            raise DataError(f"$NINJA_DATA: {exc}") from None
    local = Path("names.txt")
    if local.is_file():
        return read_names(local, alphabet)
    cached = cache_dir() / "names.txt"
    if cached.is_file():
        try:
            raw = cached.read_bytes()
            if sha256_of(raw) == NAMES_SHA256:
                return Dataset(parse_words(raw, str(cached), alphabet), str(cached))
        except (OSError, DataError):
            pass  # a damaged cache is fetched again below
    if allow_download and not os.environ.get("NINJA_OFFLINE"):
        try:
            download(cached)
            return Dataset(parse_words(cached.read_bytes(), str(cached), alphabet), str(cached))
        except (OSError, DataError) as exc:
            reason = f"could not download names.txt ({exc})"
    else:
        reason = "no names.txt found"
    return Dataset(
        synthetic_words(alphabet),
        "synthetic",
        f"{reason}: grading on a synthetic batch. Your verdicts are still right, but the "
        "numbers are not the lecture's; pass --data PATH or set NINJA_DATA.",
    )
