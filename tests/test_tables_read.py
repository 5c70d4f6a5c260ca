"""tables.iter_rows: a table read in record batches (a million-row manifest is never held
whole) gives the rows read_rows gives, in order; a projection keeps only the columns asked
for that the table has."""
from __future__ import annotations

from vindr_cli.tables import iter_rows, read_rows, write_rows


def _rows(n: int) -> list[dict]:
    return [{"input_key": f"{i:06d}", "status": "ok" if i % 7 else "failed", "reason": None if i % 7 else "bad",
             "output": f"a/{i}.dcm" if i % 7 else None, "rows": i, "columns": 2 * i, "frames": 1 + i % 3}
            for i in range(n)]


def test_batches_give_the_rows_of_the_whole_table(tmp_path):
    path = tmp_path / "m.parquet"
    write_rows(_rows(1234), "anonymize_manifest", path, batch_rows=100, convert_rows=50)
    whole = read_rows(path)
    assert len(whole) == 1234
    assert list(iter_rows(path, batch_rows=97)) == whole          # batch edges inside row groups
    some = list(iter_rows(path, ["status", "rows", "no_such_column"], batch_rows=500))
    assert some == [{"status": r["status"], "rows": r["rows"]} for r in whole]
    assert read_rows(path, ["rows", "status"]) == some            # the table's column order
    assert list(iter_rows(path, [])) == [{}] * 1234


def test_an_empty_table(tmp_path):
    path = tmp_path / "e.parquet"
    write_rows([], "anonymize_manifest", path)
    assert list(iter_rows(path)) == [] == read_rows(path)
