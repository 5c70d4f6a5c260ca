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


def test_tables_are_read_through_an_arrow_native_file_of_the_same_open_file(tmp_path):
    """tables.arrow_file: pyarrow reads an OSFile (buffers in Arrow's memory), not a PythonFile
    (buffers owned by Python objects, whose release on an Arrow I/O thread during interpreter
    exit aborts the process, apache/arrow#34314); and it is still the file opened, not the
    name: a table renamed over meanwhile, or the Python file closed, changes nothing."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from vindr_cli.tables import arrow_file

    path, new = tmp_path / "m.parquet", tmp_path / "new.parquet"
    write_rows(_rows(300), "anonymize_manifest", path, batch_rows=100)
    write_rows(_rows(5), "anonymize_manifest", new)
    old = read_rows(path)
    with open(path, "rb") as f:
        af = arrow_file(f)
    with af:
        assert isinstance(af, pa.OSFile) and not isinstance(af, pa.PythonFile)
        os.replace(new, path)                                 # the name now holds another table
        assert pq.ParquetFile(af).read().to_pylist() == old
    assert af.closed
    five = read_rows(path)
    assert len(five) == 5
    rows = iter_rows(path, batch_rows=10)                     # opened at the first row
    first = next(rows)
    write_rows(_rows(7), "anonymize_manifest", new)
    os.replace(new, path)
    assert [first, *rows] == five and len(read_rows(path)) == 7
