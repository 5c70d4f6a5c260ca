#!/usr/bin/env bash
# The main job on the committed synthetic export: info -> anonymize -> audit.
# Later stages (decode, split, validate, baseline) join this script as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin/vindr
OUT=demo
mkdir -p "$OUT/keys" && chmod 700 "$OUT/keys"
echo "== vindr info sample_dicoms/export"
$V info sample_dicoms/export
echo "== vindr anonymize (key: $OUT/keys/vindr.key, linkage beside the output, not in it)"
$V anonymize sample_dicoms/export "$OUT/anon" --key "$OUT/keys/vindr.key"
echo "== vindr audit"
$V audit "$OUT/anon"
echo "demo done: de-identified tree in $OUT/anon, manifest $OUT/anon/manifest.parquet"
