# The two Quick start commands (see README): `make demo` and `make test`.
.PHONY: demo test bench setup clean

setup:
	scripts/setup.sh test

demo:
	scripts/setup.sh test
	scripts/demo.sh

test:
	scripts/setup.sh test
	.venv/bin/python -m pytest -q

bench:
	scripts/setup.sh test bench
	.venv/bin/python bench/anonymize_bench.py

clean:
	rm -rf demo .pytest_cache
