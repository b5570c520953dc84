# Two commands for a fresh checkout:
#   make grade   set everything up, then grade the exercise-1 stub
#   make test    set everything up, then run the linters, the type checker, the docs build and the tests
#   make test-fast  (the edit-run loop) the tests not marked slow, in under a minute on two cores; no lint
#   make docs    (optional) regenerate the command reference and build the docs site into site/
#   make bench   (optional) measure grading speed and memory against their targets
#   make mutants (optional) mutation testing of the protections that matter most (not in CI)
#
# Both create .venv here with python3. TORCH picks the torch version to install first
# (torch==2.13.0, the one this project is tested with); from the public package index on
# Linux that is the CUDA build (~2.5 GB of downloads). TORCH_INDEX picks where it comes from:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu    # the small CPU-only build

VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
EX ?= exercise1
SUB ?=
ifeq ($(OS),Windows_NT)  # GNU make on Windows (Git Bash, MSYS2): the venv keeps its programs in Scripts
PYTHON ?= py
BIN := $(VENV)/Scripts
else
PYTHON ?= python3
BIN := $(VENV)/bin
endif
SHARED_DATA := $(abspath ../shared/data/names.txt)

.PHONY: setup grade test test-fast lint docs bench mutants clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m compileall -q grader  # an editable install is not compiled; PYTHONDONTWRITEBYTECODE=1 would keep it so
	touch $@

# Exit 0 when the submission was graded (passing or not), non-zero on a set-up error. Uses
# ../shared/data/names.txt when it is there; otherwise the grader finds or fetches names.txt.
grade: setup
	@if [ -z "$$NINJA_DATA" ] && [ -f "$(SHARED_DATA)" ]; then export NINJA_DATA="$(SHARED_DATA)"; fi; \
	$(BIN)/ninja-grade $(EX) $(SUB); status=$$?; [ $$status -le 1 ]

# The docs site is built with --strict (mkdocs.yml): a broken link or anchor, or a page missing from
# the nav, fails. NO_MKDOCS_2_WARNING quiets Material's notice about MkDocs' future.
lint: setup
	$(BIN)/ruff check grader tests benchmarks lecture.py examples
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The command reference (docs/cli.md) is rendered from the CLI itself; tests/test_docs.py checks it.
docs: setup
	$(BIN)/python -m grader.cli.reference docs/cli.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The tests use ../shared/data/names.txt when it is there (as in CI), else a synthetic
# data set; they never download anything. The whole suite, then its 15 slowest tests.
test: lint
	@if [ -z "$$NINJA_DATA" ] && [ -f "$(SHARED_DATA)" ]; then export NINJA_DATA="$(SHARED_DATA)"; fi; \
	NINJA_OFFLINE=1 $(BIN)/python -m pytest --durations=15

# Every test but those marked slow (pyproject.toml's markers: a CLI in a subprocess, a batch, training,
# a notebook run in a kernel...), and the 5 slowest of those it ran, so a quick test turning slow shows.
test-fast: setup
	@if [ -z "$$NINJA_DATA" ] && [ -f "$(SHARED_DATA)" ]; then export NINJA_DATA="$(SHARED_DATA)"; fi; \
	NINJA_OFFLINE=1 $(BIN)/python -m pytest -m "not slow" -q --durations=5

# Speed and memory against their targets (not part of the tests), as one table that replaces
# docs/benchmarks.md: this checkout, the same judging on its pinned cases alone (what fresh cases
# cost) and, with BASELINE=REF, another commit, alternating.
bench: setup
	@if [ -z "$$NINJA_DATA" ] && [ -f "$(SHARED_DATA)" ]; then export NINJA_DATA="$(SHARED_DATA)"; fi; \
	$(BIN)/python benchmarks/run.py --write docs/benchmarks.md --pinned-only $(if $(BASELINE),--baseline $(BASELINE)) $(BENCH_ARGS)

# Mutation testing, a few minutes, not part of `make test` or CI: mutmut changes one thing at a time
# in copies (under mutants/) of the functions named here (the policy, the wire format, the escaping of student text,
# the batch's resume and what a rerun regrades), runs the tests that reach it ([tool.mutmut] in
# pyproject.toml), and lists each change no test noticed. `$(BIN)/mutmut show NAME` prints one.
# mutmut counts any SIGKILL of its worker as a "segfault" (💥), which some batch mutants get whether
# the tests caught them or not; to tell, run the tests on one by hand: cd mutants && MUTANT_UNDER_TEST=NAME python -m pytest -x tests/test_batch*.py
MUTANTS := "grader.confined.policy.*" "grader.confined.wire.*" "grader.reporting.formats.x__xml_text*" \
	"grader.reporting.formats.x__md_cell*" \
	"grader.reporting.formats.x__escape*" "grader.reporting.report.x_render_html*" "grader.reporting.report.x_inert_in_ci_logs*" \
	"grader.ci.batch.x_run_batch*" "grader.ci.batch.x_record*" "grader.ci.batch.x_plan_batch*" "grader.ci.record.x_why_grade*"
mutants: setup
	@if [ -z "$$NINJA_DATA" ] && [ -f "$(SHARED_DATA)" ]; then export NINJA_DATA="$(SHARED_DATA)"; fi; \
	export NINJA_OFFLINE=1; unset PYTHONPATH; \
	$(BIN)/mutmut run $(MUTANTS); $(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info mutants site
