#!/usr/bin/env bash
# The main job on the committed synthetic export: info -> anonymize -> audit -> decode.
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
echo "== vindr decode (1024-px PNGs with the header window)"
$V decode "$OUT/anon" "$OUT/images" --size 1024
echo "demo done: de-identified tree in $OUT/anon (manifest.parquet), images in $OUT/images (images.parquet)"
