# Set-up and entry points. `make demo` and `make test` create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned in the same command as everything else so no dependency can swap it out.
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m demo.run

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The peer of benchmarks/cct_throughput.py is vit-pytorch's CCT. vit-pytorch requires torchvision, which this project
# keeps out, so it is installed without dependencies (its cct.py needs only torch and einops>=0.8.2), in the same
# command as torch so that nothing can swap torch out.
BENCH_PACKAGES := "vit-pytorch==1.26.14" "einops>=0.8.2"
VIT_PYTORCH_DIR = $$($(BIN)/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('vit_pytorch').origin).parents[1])")

bench: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps "$(TORCH_SPEC)" $(BENCH_PACKAGES)
	$(BIN)/python benchmarks/cct_throughput.py --vit_pytorch_dir "$(VIT_PYTORCH_DIR)"
	for script in $(filter-out benchmarks/cct_throughput.py,$(wildcard benchmarks/*.py)); do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) outputs
