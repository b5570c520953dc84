"""Finding names.txt: the lookup order, the sha256 check, the offline fallback."""

from __future__ import annotations

import ast
import inspect
import io
import itertools
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.courseware import data
from grader.courseware.data import NAMES_SHA256, DataError, find_names
from tests.conftest import ROOT, Cli, MechanismOff

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


# Five places, each with names of its own, so the words found say which place was used.
PLACES = {"--data": b"abcdefghijklm\nnopqrstuvwxyz\ndata\n", "$NINJA_DATA": b"abcdefghijklm\nnopqrstuvwxyz\nenv\n",
          "./names.txt": b"abcdefghijklm\nnopqrstuvwxyz\nlocal\n",
          "the cache": b"abcdefghijklm\nnopqrstuvwxyz\ncache\n"}  # the download brings the cache's bytes


def lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """With every place holding a names.txt, take them away one by one from the first: which place
    each lookup used ("the download" when it fetched)."""
    explicit, env = tmp_path / "data.txt", tmp_path / "env.txt"
    explicit.write_bytes(PLACES["--data"])
    env.write_bytes(PLACES["$NINJA_DATA"])
    (tmp_path / "names.txt").write_bytes(PLACES["./names.txt"])
    cached = tmp_path / "cache" / "backprop-ninja" / "names.txt"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(PLACES["the cache"])
    monkeypatch.setattr(data, "NAMES_SHA256", data.sha256_of(PLACES["the cache"]))  # the cache and download: right
    fetched: list[str] = []

    def urlopen(url: str, timeout: float) -> io.BytesIO:
        fetched.append(url)
        return io.BytesIO(PLACES["the cache"])

    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("NINJA_DATA", str(env))
    by_word = {content.split()[-1].decode(): place for place, content in PLACES.items()}
    used = []
    for take_away in (lambda: None, lambda: None, lambda: monkeypatch.delenv("NINJA_DATA"),
                      (tmp_path / "names.txt").unlink, cached.unlink):  # the first lookup alone is given --data
        take_away()
        found = data.find_names(explicit if not used else None)
        downloaded = len(fetched)
        used.append("the download" if downloaded else by_word[found.words[-1]])
        assert found.note == "" or not downloaded
        if downloaded:
            assert found.source == str(cached) and cached.read_bytes() == PLACES["the cache"]
            break
    return used


def test_lookup_order_is_data_env_local_cache_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       mechanism_off: MechanismOff) -> None:
    """--data, then $NINJA_DATA, ./names.txt, the user cache, and a download only when none has one; a
    lookup with any two of the first four swapped gives another order."""
    order = ["--data", "$NINJA_DATA", "./names.txt", "the cache", "the download"]

    def check() -> None:
        with monkeypatch.context() as m:
            assert lookup_order(tmp_path, m) == order

    check()
    for i, j in itertools.combinations(range(4), 2):
        mechanism_off(check, lambda m, i=i, j=j: m.setattr(data, "find_names", with_steps_swapped(i, j)),
                      f"the lookup order (steps {i} and {j} swapped)")


def with_steps_swapped(i: int, j: int) -> Callable[..., data.Dataset]:
    """find_names with its i-th and j-th lookup swapped: each lookup is an `if` that returns, with the
    statements just before it that it reads (the download, last, is not one of them)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(data.find_names)))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    steps: list[list[ast.stmt]] = []
    pending: list[ast.stmt] = []
    rest = list(function.body[1:])  # after the docstring
    while rest and not (isinstance(rest[0], ast.If) and rest[0].orelse):
        statement = rest.pop(0)
        pending.append(statement)
        if isinstance(statement, ast.If):
            steps.append(pending)
            pending = []
    assert len(steps) == 4 and not pending, "find_names does not read as four lookups and a download"
    steps[i], steps[j] = steps[j], steps[i]
    function.body[1:] = [statement for step in steps for statement in step] + rest
    namespace = dict(vars(data))
    exec(compile(tree, data.__file__, "exec"), namespace)
    swapped: Callable[..., data.Dataset] = namespace["find_names"]
    return swapped


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


OFFLINE_NOTE = ("note: no names.txt found: grading on a synthetic batch. Your verdicts are still right, but the "
                "numbers are not the lecture's; pass --data PATH or set NINJA_DATA.")


def test_offline_notice_as_the_cli_prints_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline with no copy anywhere: the CLI grades on the synthetic batch, prints the notice as its
    own line above the verdicts (and in the JSON's notes), and tries no download."""
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("downloaded while offline")

    monkeypatch.setattr(data.urllib.request, "urlopen", boom)
    monkeypatch.setenv("NINJA_OFFLINE", "1")
    solution = str(ROOT / "solutions" / "exercise2.py")
    text = cli(["exercise2", solution])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert OFFLINE_NOTE in lines and lines.index(OFFLINE_NOTE) < next(
        i for i, line in enumerate(lines) if line.startswith("dlogits"))
    report = json.loads(cli(["exercise2", solution, "--format", "json"]).stdout)
    assert report["notes"][0] == OFFLINE_NOTE.removeprefix("note: ") and report["passed"] is True


def test_failed_download_notice_as_the_cli_prints_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """No copy and no network: the CLI's notice says the download failed and why."""
    monkeypatch.setattr(data.urllib.request, "urlopen", refuse_network)
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py")])
    assert result.exit_code == 0, result.output
    assert ("note: could not download names.txt (network is unreachable): grading on a synthetic batch. "
            "Your verdicts are still right") in result.stdout
