#!/usr/bin/env bash
# Create .venv and install vindr with its test tools. Idempotent; safe to re-run.
# Usage: scripts/setup.sh [extra ...]   (extras: test, bench, baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${*:-test}"
extras="${extras// /,}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.vindr-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  case ",$extras," in
    *,baseline,*) .venv/bin/python -m pip install -q "torch==2.13.0" ;;
  esac
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
# Independent DICOM checkers used by the tests (Debian packages). Installed when we can.
if ! command -v dcmdump >/dev/null || ! command -v dciodvfy >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk dicom3tools >/dev/null) \
      || echo "warning: could not install dcmtk/dicom3tools; tests that need them will fail" >&2
  else
    echo "warning: dcmtk and dicom3tools are missing (apt-get install dcmtk dicom3tools)" >&2
  fi
fi
# TrueType fonts for the burned-in text corpus (bench/burned_in_corpus.py and its test).
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null \
    || echo "warning: could not install fonts-dejavu-core; the burned-in corpus test will fail" >&2
fi
