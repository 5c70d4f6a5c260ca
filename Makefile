# The two Quick start commands (see README): `make demo` and `make test`.
.PHONY: demo test bench setup clean

setup:
	scripts/setup.sh test baseline

demo:
	scripts/setup.sh test baseline
	scripts/demo.sh

test:
	scripts/setup.sh test baseline
	.venv/bin/python -m pytest -q -n 2 --dist loadfile

bench:
	scripts/setup.sh test baseline bench
	for b in anonymize_bench decode_backends decode_bench split_bench baseline_bench privacy_bench; do .venv/bin/python bench/$$b.py || exit 1; done

clean:
	rm -rf demo .pytest_cache
