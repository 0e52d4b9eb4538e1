"""Fixtures the CLI tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.layout import ClusterDir, init_cluster
from tests.clusters import kill_all


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDir]:
    """A 4-node cluster directory, initialised; whatever runs in it is killed on the way out."""
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    try:
        yield layout
    finally:
        kill_all(layout)
