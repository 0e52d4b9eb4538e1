"""`millchain cluster faults` refuses a probability that is not a number before it changes
anything: click's FloatRange(0, 1) lets "nan" through (every comparison with nan is false), the
nodes refuse it only after --seed has reseeded them, and the error names a URL, not a node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clusters import millchain, running_cluster

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("option", ["--loss", "--dup"])
def test_a_probability_that_is_nan_is_refused_and_changes_nothing(
    tmp_path: Path, option: str
) -> None:
    root = tmp_path / "cluster"
    with running_cluster(root):
        result = millchain("cluster", "faults", "--dir", str(root), "--seed", "9", option, "nan")
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"'{option}'" in result.stderr and "not a finite number" in result.stderr

        shown = millchain("cluster", "faults", "--dir", str(root), "--json")
        assert shown.returncode == 0, shown.stderr
        assert {name: state["seed"] for name, state in json.loads(shown.stdout).items()} == {
            f"node{i}": 0 for i in range(4)
        }
