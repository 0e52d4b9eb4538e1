"""scripts/node_costs.py on a short chain: the backup admits, agrees on and executes every block
(past a stable checkpoint), and each stage's CPU per transaction comes out positive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.node_costs import STAGES, main


def test_a_short_run_times_every_stage_past_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "node-costs.json"
    # 40 blocks: the default checkpoint interval (32) is crossed and made stable.
    assert (
        main(["--txs-per-block", "8", "--blocks", "36", "--warm-up", "4", "--json", str(out)]) == 0
    )
    result = json.loads(out.read_text())
    assert result["height"] == 40 and result["stable_checkpoint"] == 32
    assert set(result["us_per_tx"]) == set(STAGES)
    assert all(value > 0 for value in result["us_per_tx"].values())
    assert result["us_per_tx_total"] == pytest.approx(sum(result["us_per_tx"].values()), abs=0.2)
    assert result["verify_us"] > 0
    printed = capsys.readouterr().out
    assert "admission" in printed and "one ed25519 verification" in printed


@pytest.mark.parametrize("argv", [["--blocks", "0"], ["--warm-up", "-1"], ["--txs-per-block", "x"]])
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_blocks_over_the_chains_byte_limit_are_refused_up_front(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Backups refuse a pre-prepare over block_bytes_max (123 KiB at n = 4): such a run would
    # only stall at its first block.
    assert main(["--txs-per-block", "600", "--blocks", "1", "--warm-up", "0"]) == 2
    err = capsys.readouterr().err
    assert "block_bytes_max" in err and "--txs-per-block may be at most" in err
