"""The cluster directory: a manifest that is not one, and a directory that cannot be made, give
a one-line error naming the file, and the CLI says it without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.layout import ClusterDir, LayoutError, init_cluster
from cli.main import main


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        b"\xff\xfe",
        "[]",
        "{}",
        '{"nodes": "node0"}',
        '{"nodes": ["node0", 1]}',
        '{"nodes": ["../node1"]}',
        '{"nodes": ["node0"], "observers": {"a": 1}}',
    ],
)
def test_a_manifest_that_is_not_one_is_a_layout_error(
    tmp_path: Path, manifest: str | bytes
) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    if isinstance(manifest, bytes):
        layout.manifest_file.write_bytes(manifest)
    else:
        layout.manifest_file.write_text(manifest, encoding="utf-8")
    with pytest.raises(LayoutError, match=r"cluster\.json"):
        layout.node_names()
    with pytest.raises(LayoutError, match=r"cluster\.json"):
        layout.validator_names()

    result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(layout.root)])
    assert result.exit_code == 1
    assert "Error:" in result.output and "cluster.json" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_relative_cluster_dir_is_held_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Node processes run in their own directories: paths handed to them must not be relative.
    monkeypatch.chdir(tmp_path)
    layout = ClusterDir(Path("cluster"))
    assert layout.root == tmp_path / "cluster"
    assert layout.config_file("node0").is_absolute()


def test_init_where_no_directory_can_be_made_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(LayoutError, match="cannot create the cluster directory"):
        init_cluster(blocker / "cluster", nodes=4)
    result = CliRunner().invoke(main, ["init", "--dir", str(blocker / "cluster")])
    assert result.exit_code == 1 and "cannot create the cluster directory" in result.output
