"""deid.codes derives a code's entry on first use (worker start-up, issue 13): every code's
lazily derived entry equals the whole index's, unknown codes are None."""
from __future__ import annotations

from vindr_cli.deid import codes


def test_lazy_entry_equals_whole_index():
    whole = codes._index()
    assert len(whole) > 30000
    codes._ENTRIES.clear()
    for code, entry in whole.items():
        assert codes._entry(code) == entry
    assert codes._entry(("99HOSP", "XR123")) is None
    assert codes._entry(("SCT", "T-D0050")) is None
    assert codes.index_stats() == {s: n for s, n in _stats(whole).items()}


def _stats(whole):
    out = {}
    for scheme, _value in whole:
        out[scheme] = out.get(scheme, 0) + 1
    return out
