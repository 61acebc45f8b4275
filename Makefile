# Two commands set everything up:  make demo  and  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch, from TORCH_INDEX when given (a pytorch.org wheel index: the CPU-only or a CUDA
# build). See README ("Using a GPU").
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# The main job on the built-in corpus (no download): tokenize the Python standard library,
# train a character LSTM for two minutes (384 units: a smaller model than the default gets
# further in two minutes), then sample from it.
demo: $(STAMP)
	$(BIN)/charrnn tokenize builtin:python -o runs/demo-data --force
	$(BIN)/charrnn train runs/demo-data -o runs/demo --time-budget 2m --hidden-size 384 --force
	$(BIN)/charrnn sample runs/demo --prompt "def " --length 600 --temperature 0.8 --seed 0

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check charrnn tests benchmarks
	$(BIN)/ruff format --check charrnn tests benchmarks

# the environment and the demo's own output; other runs under runs/ are the user's
clean:
	rm -rf $(VENV) runs/demo-data runs/demo
