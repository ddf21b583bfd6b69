# nube — the two front-door commands are `make up` and `make test`.
.PHONY: up test setup lint bench soak clean compose-up

PY := .venv/bin/python

up: setup            ## start the whole stack locally and show a first job (Ctrl-C stops it)
	$(PY) -m nube.tools.devstack

test: setup          ## install what is missing, start dockerd/libvirtd, run the whole suite
	scripts/test.sh $(PYTEST_ARGS)

mesh: setup          ## several hosts on one machine: the stack across network namespaces (Ctrl-C stops)
	$(PY) -m nube.tools.mesh up

setup:
	scripts/setup.sh all

lint:                ## ruff and mypy
	.venv/bin/ruff check .
	.venv/bin/mypy nube api workers agents tests bench

bench: setup         ## benchmarks (ratios against bare baselines measured in the same run)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

soak: setup          ## memory of every process and of Redis over N jobs (N=100000; docs/soak.png)
	$(PY) bench/soak.py --n $(or $(N),100000)

compose-up:          ## the same stack as containers (docker-compose; images built locally)
	scripts/compose-up.sh

clean:
	rm -rf .nube .pytest_cache .mypy_cache .ruff_cache
