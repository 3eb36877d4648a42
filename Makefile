# OpenASR: two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | cksum | cut -d' ' -f1)
WSS_MODEL ?= tiny.en
BUNDLED_MODELS := tiny.en base
RUN_SYS_PKGS := libopus0
TEST_SYS_PKGS := libopus0 flite espeak-ng sox festival festvox-us-slt-hts redis-server redis-sentinel \
	chromium nodejs
# make image-test: podman (runc, chroot builds), debootstrap (a local base when the official one
# cannot be pulled), and the services and tools the image is run against.
IMAGE_SYS_PKGS := podman runc debootstrap postgresql redis-server nginx flite
IMAGE_TAG ?= localhost/openasr:image-test

.PHONY: run worker test image-test lint fmt bench install model migrate sysdeps-run sysdeps-test \
	sysdeps-image clean

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q -e clients/python
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

sysdeps-run:
	@scripts/sysdeps.sh $(RUN_SYS_PKGS)

sysdeps-test:
	@scripts/sysdeps.sh $(TEST_SYS_PKGS)

sysdeps-image:
	@scripts/sysdeps.sh $(IMAGE_SYS_PKGS)

## The default model (WSS_MODEL) and every bundled one: the in-process server serves them all,
## one worker pool each, picked by a session's model_id (README "Models").
model: install
	@if [ -z "$$WHISPER_MODEL_PATH" ]; then $(BIN)/python manage.py install_model $(WSS_MODEL); fi
	@for name in $(BUNDLED_MODELS); do \
	  $(BIN)/python manage.py install_model $$name >/dev/null || exit 1; done

migrate: install
	@$(BIN)/python manage.py migrate --noinput -v 0

## Start the server on $WSS_HOST:$WSS_PORT (0.0.0.0:9090) with the embedded defaults.
run: sysdeps-run install model migrate
	exec $(BIN)/python -m openasr_site.server

## Start an inference worker (needs REDIS_URL): more of these scale inference out.
worker: sysdeps-run install model
	exec $(BIN)/python manage.py runworker asr.inference

## Lint and the whole test suite (starts a Redis if none answers).
test: sysdeps-test install lint
	REDIS_TEST_URL=$$(PY=$(BIN)/python scripts/ensure-redis.sh) $(BIN)/python -m pytest $(PYTEST_ARGS)

## Build the image with podman and run it as operators do (tests/deploy/image): the server
## alone, then migrate + server + worker against Redis and PostgreSQL (docs/DEPLOYING.md).
image-test: sysdeps-image install
	@scripts/image-podman-setup.sh
	@base=$$(scripts/image-base.sh) && PY=$(BIN)/python scripts/image-build.sh $(IMAGE_TAG) "$$base"
	OPENASR_IMAGE=$(IMAGE_TAG) $(BIN)/python -m pytest tests/deploy/image $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: tables on stdout, JSON under benchmarks/results/.
bench: sysdeps-test install model
	REDIS_TEST_URL=$$(PY=$(BIN)/python scripts/ensure-redis.sh) $(BIN)/python benchmarks/run_all.py

clean:
	-PY=$(BIN)/python scripts/ensure-redis.sh stop
	rm -rf $(VENV) .make var db.sqlite3
