#!/usr/bin/env bash
# Create .venv and install vindr with its test tools. Idempotent; safe to re-run.
# Usage: scripts/setup.sh [extra ...]   (extras: test, bench, baseline, cluster, fast; ocr is always added)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${*:-test}"
extras="${extras// /,}"
case ",$extras," in *,ocr,*) ;; *) extras="ocr,$extras" ;; esac
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
# Burned-in text OCR (vindr_cli.deid.pixeltext): Tesseract's English and Vietnamese models
# (the engine itself is in tesserocr's wheel) and the DejaVu fonts its tests draw with.
if [ ! -f /usr/share/tesseract-ocr/5/tessdata/vie.traineddata ] || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng tesseract-ocr-vie fonts-dejavu-core >/dev/null) \
      || echo "warning: could not install tesseract-ocr-eng/-vie; burned-in text OCR is off and its tests skip" >&2
  else
    echo "warning: Tesseract models are missing (apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-vie fonts-dejavu-core)" >&2
  fi
fi
# Headless Chromium + chromedriver for vindr review's browser tests (tests/test_review_browser.py).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "warning: could not install chromium/chromium-driver; vindr review's browser tests skip" >&2
  else
    echo "warning: Chromium is missing (apt-get install chromium chromium-driver); vindr review's browser tests skip" >&2
  fi
fi
# DICOMweb server for vindr push's tests (tests/test_push.py starts its own Orthanc on 127.0.0.1).
if [ ! -x /usr/sbin/Orthanc ] || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null) \
      || echo "warning: could not install orthanc/orthanc-dicomweb; vindr push's Orthanc tests skip" >&2
  else
    echo "warning: Orthanc is missing (apt-get install orthanc orthanc-dicomweb); vindr push's Orthanc tests skip" >&2
  fi
fi
