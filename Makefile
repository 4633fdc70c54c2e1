# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATASETS ?= ../shared/datasets

.PHONY: install run test lint typecheck unit protos bench bench-ingest bench-stream bench-nab bench-detect bench-latency bench-correlate bench-rca bench-gateway bench-tsdb-write bench-tsdb-growth bench-soak clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/aiops up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy libs/common/aiops_common libs/cli/aiops_cli $(wildcard services/*/aiops_*) benchmarks

test: lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m unit

# The Prometheus remote write messages (1.0 and 2.0), compiled from the .proto files next to them.
PROMPB := libs/common/aiops_common/prompb
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I libs/common --python_out=libs/common --pyi_out=libs/common \
		$(PROMPB)/types.proto $(PROMPB)/remote.proto $(PROMPB)/io/prometheus/write/v2/types.proto

bench: bench-ingest bench-stream bench-nab bench-detect bench-latency bench-correlate bench-rca bench-gateway bench-tsdb-write

bench-ingest: $(STAMP)
	$(BIN)/python -m benchmarks.ingest

bench-stream: $(STAMP)
	$(BIN)/python -m benchmarks.stream

# SQLite TSDB writes: executemany (before) against multi-row statements, alone and beside a busy thread (< 1 min).
bench-tsdb-write: $(STAMP)
	$(BIN)/python -m benchmarks.tsdb_write

# Raw-sample inserts into the SQLite TSDB as its table grows to 12 million rows (about 6 minutes).
bench-tsdb-growth: $(STAMP)
	$(BIN)/python -m benchmarks.tsdb_growth

bench-latency: $(STAMP)
	$(BIN)/python -m benchmarks.latency

bench-nab: $(STAMP)
	$(BIN)/python -m benchmarks.nab --datasets $(DATASETS)/nab

bench-detect: $(STAMP)
	$(BIN)/python -m benchmarks.detect

bench-correlate: $(STAMP)
	$(BIN)/python -m benchmarks.correlate --worker

# The peers run from their own packages: circa-clue without its dependencies (rpy2, torch, tigramite are
# not needed by its simulator and RHT/DA scorers, and rpy2 needs R).
bench-rca: $(STAMP)
	$(BIN)/pip install --quiet fse-baro
	$(BIN)/pip install --quiet --no-deps circa-clue
	$(BIN)/python -m benchmarks.rca --petshop $(DATASETS)/petshop/dataset $(RCA_FLAGS)

# The incidents list and detail through a real gateway process under 1/10/50 concurrent clients, 10,000 incidents,
# on SQLite and on osmem-server (the Elasticsearch API); GATEWAY_FLAGS=--quick for a short run.
bench-gateway: $(STAMP)
	$(BIN)/python -m benchmarks.gateway $(GATEWAY_FLAGS)

.PHONY: demo bench-demo
DEMO_FAULT ?= payment:latency
demo: $(STAMP)
	$(BIN)/aiops demo

bench-demo: $(STAMP)
	$(BIN)/aiops demo run --fault $(DEMO_FAULT) --approve --timeout 300

# The whole platform at the benchmarked sustainable rate for 10 minutes; SOAK_FLAGS="--minutes 3" on a busy machine.
bench-soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_FLAGS)

clean:
	rm -rf $(VENV) .aiops .pytest_cache .mypy_cache .ruff_cache
