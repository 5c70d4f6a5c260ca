#!/usr/bin/env bash
# The main job on the committed synthetic export: info -> anonymize -> audit -> select -> decode ->
# split -> release -> validate -> a short baseline -> evaluate of its test predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin/vindr
OUT=demo
mkdir -p "$OUT/keys" && chmod 700 "$OUT/keys"
echo "== vindr info sample_dicoms/export"
$V info sample_dicoms/export
echo "== vindr anonymize (key: $OUT/keys/vindr.key, linkage beside the output, not in it)"
$V anonymize sample_dicoms/export "$OUT/anon" --key "$OUT/keys/vindr.key"
# its summary ends with the count of images whose burned-in text was masked ("pixels: ...")
echo "== vindr audit"
$V audit "$OUT/anon" --report "$OUT/audit.json"   # its status goes in the release datasheet
echo "== vindr select (vindr-cxr preset: selection.parquet with every reason, worklist.csv, dicom/ for annotators)"
$V select "$OUT/anon" -o "$OUT/selection" --recipe vindr-cxr
echo "== vindr decode (1024-px PNGs with the header window)"
$V decode "$OUT/anon" "$OUT/images" --size 1024
echo "== vindr split (the selected images only; annotations re-keyed through the linkage table; whole patients per side)"
$V split sample_dicoms/annotations/vindr_cxr_annotations.csv --meta "$OUT/anon/manifest.parquet" \
  --linkage "$OUT/anon.linkage.parquet" --test-size 0.3 --unit patients --seed 0 -o "$OUT/split" \
  --selection "$OUT/selection"
echo "== vindr release"
rm -rf "$OUT/release"
$V release "$OUT/anon" --split "$OUT/split" --images "$OUT/images" -o "$OUT/release" --audit-report "$OUT/audit.json" \
  --selection "$OUT/selection"
echo "== vindr validate"
$V validate "$OUT/release"
echo "== vindr baseline (short: 256 px, 3 epochs; a release of about a dozen images is too small for a verdict)"
$V baseline "$OUT/release" -o "$OUT/baseline" --size 256 --epochs 3 --no-resume
echo "== vindr evaluate (VinBigData mAP of the baseline's test predictions against the release's test ground truth)"
$V evaluate --gt "$OUT/release/annotations/kaggle_test.csv" --labels "$OUT/release/labels.json" \
  --pred "$OUT/baseline/test_predictions.csv"
echo "demo done: release in $OUT/release (datasheet $OUT/release/README.md), baseline report $OUT/baseline/report.md"
