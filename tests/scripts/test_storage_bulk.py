"""scripts/storage_bulk.py on a few small blocks: both ways store every block, the figures come
out per way and per round, and bad arguments are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.storage import Storage
from scripts.storage_bulk import WAYS, main, records, store


def test_a_short_run_reports_both_ways_and_their_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "storage-bulk.json"
    argv = ["--txs-per-block", "4", "--blocks", "30", "--run", "7", "--rounds", "2"]
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["rounds"]) == 2
    assert all(set(r) == set(WAYS) and min(r.values()) > 0 for r in result["rounds"])
    assert set(result["us_per_tx"]) == set(WAYS) and result["ratio_median"] > 0
    assert "savepoints / bulk" in capsys.readouterr().out


@pytest.mark.parametrize("bulk", [False, True])
def test_either_way_stores_every_block(tmp_path: Path, bulk: bool) -> None:
    built = records(9, 3)
    path = tmp_path / "chain.sqlite"
    assert store(path, built, 4, bulk) > 0
    storage = Storage(path)
    try:
        assert storage.head().height == 9
        assert storage.has_tx(built[8].receipts[2][0])
        assert len(storage.events("item:part-1@bench")) == 9
    finally:
        storage.close()


@pytest.mark.parametrize("argv", [["--blocks", "0"], ["--run", "-1"], ["--rounds", "x"]])
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err
