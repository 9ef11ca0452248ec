"""Tables printed by the benchmark / oracle commands."""

from __future__ import annotations

from chronotope.scripts.bench.common import print_table


def test_piped_table_is_printed_full_width(capsys, monkeypatch):
    """stdout is not a terminal (as under a pipe): every column is printed whole, not cut to 80 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)
    cols = [f"a_long_column_name_{i}" for i in range(10)]
    md = print_table("wide", cols, [[f"value_{i}_{j}" for j in range(10)] for i in range(2)])
    out = capsys.readouterr().out
    for c in cols:
        assert c in out
    assert "value_1_9" in out
    assert max(len(line) for line in out.splitlines()) > 200
    assert md.startswith("### wide")
