"""Finding names.txt: the lookup order, the sha256 check, the offline fallback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from grader.courseware import data
from grader.courseware.data import NAMES_SHA256, DataError, find_names

REAL = b"".join(f"{w}\n".encode() for w in ["emma", "olivia", "ava"])
ALPHABET_NAMES = b"abcdefghijklm\nnopqrstuvwxyz\nanna\n"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NINJA_DATA", raising=False)
    monkeypatch.delenv("NINJA_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def refuse_network(*args: object, **kwargs: object) -> None:
    raise OSError("network is unreachable")


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data is used before $NINJA_DATA; a file that is not the lecture's gets a note."""
    mine = tmp_path / "mine.txt"
    mine.write_bytes(ALPHABET_NAMES)
    monkeypatch.setenv("NINJA_DATA", str(tmp_path / "elsewhere.txt"))
    found = find_names(mine)
    assert found.source == str(mine) and found.words[0] == "abcdefghijklm"
    assert "not the lecture's names.txt" in found.note


def test_env_then_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$NINJA_DATA comes before ./names.txt, which comes before the cache."""
    (tmp_path / "names.txt").write_bytes(ALPHABET_NAMES)
    assert find_names().source == "names.txt"
    other = tmp_path / "other.txt"
    other.write_bytes(ALPHABET_NAMES + b"zed\n")
    monkeypatch.setenv("NINJA_DATA", str(other))
    assert find_names().source == str(other)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "holds no names"), (b"Emma\nOlivia\n", "not a lowercase name"), (b"\xff\xfe", "not UTF-8"),
     (b"abc\n", "does not use all 26 letters")],
)
def test_bad_explicit_file_is_a_data_error(tmp_path: Path, content: bytes, reason: str) -> None:
    """A file named explicitly that is not a names.txt is refused with the reason."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=reason):
        find_names(bad)


def test_missing_explicit_file_is_a_data_error(tmp_path: Path) -> None:
    """--data naming nothing is an error, not a silent fallback."""
    with pytest.raises(DataError, match=r"no names\.txt at"):
        find_names(tmp_path / "nope.txt")


def test_offline_falls_back_to_synthetic_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """No file and no network: a synthetic data set with 27 symbols and a note."""
    monkeypatch.setattr(data.urllib.request, "urlopen", refuse_network)
    found = find_names()
    assert found.synthetic
    assert "could not download names.txt" in found.note and "synthetic" in found.note
    assert len(set("".join(found.words))) == 26


def test_download_checks_sha256(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A download with the wrong sha256 is not kept; the grader falls back and says why."""
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: io.BytesIO(REAL))
    found = find_names()
    assert found.synthetic and "wrong sha256" in found.note
    assert not (tmp_path / "cache" / "backprop-ninja" / "names.txt").exists()


def test_download_with_right_sha256_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A download whose sha256 matches is cached atomically and used from then on."""
    monkeypatch.setattr(data, "NAMES_SHA256", data.sha256_of(ALPHABET_NAMES))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: io.BytesIO(ALPHABET_NAMES))
    cached = tmp_path / "cache" / "backprop-ninja" / "names.txt"
    assert find_names().source == str(cached)
    assert cached.read_bytes() == ALPHABET_NAMES
    assert list(cached.parent.iterdir()) == [cached]  # no temporary file left
    monkeypatch.setattr(data.urllib.request, "urlopen", refuse_network)
    assert find_names().source == str(cached)  # second time: from the cache


def test_offline_env_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """$NINJA_OFFLINE turns the download off."""
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("downloaded while offline")
    monkeypatch.setattr(data.urllib.request, "urlopen", boom)
    monkeypatch.setenv("NINJA_OFFLINE", "1")
    assert find_names().synthetic


def test_real_names_sha256_is_the_documented_one() -> None:
    """The sha256 the grader checks is that of ../shared/data/names.txt when present."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt"
    if not shared.is_file():
        pytest.skip("../shared/data/names.txt is not beside this checkout")
    assert data.sha256_of(shared.read_bytes()) == NAMES_SHA256
