"""`millchain oracle verify` on a running cluster: with no model registered there is nothing to
verify, which is an error, and a --from above the head is refused as --to below --from is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


def test_verify_refuses_a_chain_without_a_model_and_a_start_above_the_head(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        result = millchain("oracle", "verify", "--dir", str(root))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "no fault model is registered on the chain: nothing to verify" in result.stderr
        assert "final predictions reproduced" not in result.stdout

        result = millchain("oracle", "verify", "--from", "9999", "--dir", str(root))
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--from 9999 is above the head" in result.stderr
        assert "heights 9999" not in result.stdout
