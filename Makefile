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

# The main job on a corpus that ships with charrnn (no download): train a character LSTM on
# tinyshakespeare for two minutes (the model is picked to fit the budget), then sample.
demo: $(STAMP)
	$(BIN)/charrnn train builtin:shakespeare -o runs/demo --time-budget 2m --force
	$(BIN)/charrnn sample runs/demo --prompt "ROMEO:" --length 500 --temperature 0.8 --seed 1

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check charrnn tests benchmarks scripts
	$(BIN)/ruff format --check charrnn tests benchmarks scripts

# the environment and the demo's own output; other runs under runs/ are the user's
clean:
	rm -rf $(VENV) runs/demo
