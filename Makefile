# The two commands a researcher needs: `make demo` and `make test`.
# Both create the virtual environment in .venv/ on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RESULTS ?= results/runs
REPORT  ?= results/report
export HF_HUB_OFFLINE ?= 1

.PHONY: venv demo test test-fast clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the wheel is served from this machine's disk
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/bench run --method simclr --profile smoke --budget 2ep --results $(RESULTS)
	$(BIN)/bench report --results $(RESULTS) --out $(REPORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/runs results/report
