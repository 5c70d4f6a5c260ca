"""`vindr review`: a local web page where the data custodian looks at flagged images and decides.

queues.py     which images need a look (redacted, residual text, QC flags, near-duplicates, spot check)
decisions.py  the append-only decisions journal (DIR/.vindr/review.jsonl) and review.parquet
server.py     the loopback-only, token-guarded HTTP server and the PNG rendering through vindr's
              display pipeline (vindr_cli.pixels); static/ is the page (package data)
gate.py       what `vindr release` asks of a review (undecided flagged images refuse it)
"""
