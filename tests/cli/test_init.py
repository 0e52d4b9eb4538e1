"""`millchain init`: a failed init leaves nothing behind, so the next one can succeed; what an
older failed init left is refused with a one-line error; and init's listing of identities names
only identities `--as` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.layout import ClusterDir
from cli.main import main


def _init(directory: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["init", "--dir", str(directory), *args])


def _one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_failed_init_leaves_no_directory_and_the_next_init_works(tmp_path: Path) -> None:
    directory = tmp_path / "made" / "cluster"
    _one_line_error(_init(directory, "--chain-id", ""), "chain_id must be 1 to 64 characters")
    assert not (tmp_path / "made").exists()  # the folders it made are gone too

    result = _init(directory)
    assert result.exit_code == 0, result.output
    assert ClusterDir(directory).node_names() == ["node0", "node1", "node2", "node3"]
    assert not list(directory.glob(".init-*"))


def test_a_failed_init_in_an_existing_folder_leaves_it_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    _one_line_error(_init(tmp_path, "--chain-id", "x" * 65), "chain_id must be 1 to 64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    assert _init(tmp_path).exit_code == 0
    assert (tmp_path / "cluster.json").exists() and (tmp_path / "notes.txt").exists()


def test_what_an_earlier_failed_init_left_is_a_one_line_error(tmp_path: Path) -> None:
    # As an init before this fix left it: keys written, no genesis and no cluster.json.
    key_file = tmp_path / "nodes" / "node0" / "validator.key.json"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("{}", encoding="utf-8")
    _one_line_error(_init(tmp_path), "already holds nodes (left by an init that failed?)")
    assert key_file.read_text(encoding="utf-8") == "{}"


def test_init_over_a_cluster_is_refused(tmp_path: Path) -> None:
    assert _init(tmp_path).exit_code == 0
    _one_line_error(_init(tmp_path), "already holds a cluster")


@pytest.mark.parametrize("observers", ["-1", "-5"])
def test_a_negative_number_of_observers_is_refused(tmp_path: Path, observers: str) -> None:
    result = _init(tmp_path / "cluster", "--observers", observers)
    assert result.exit_code == 2, result.output
    assert "'--observers'" in result.output
    assert not (tmp_path / "cluster").exists()


def test_every_identity_init_lists_is_one_as_accepts(tmp_path: Path) -> None:
    result = _init(tmp_path)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("identities"))
    listed = line.split(": ", 1)[1].split(", ")
    assert "oracle-node0" in listed and "admin" in listed
    layout = ClusterDir(tmp_path)
    on_chain = {i.name: i.public_key for i in layout.genesis().identities}
    for name in listed:
        assert layout.identity_keys(name).public_key == on_chain[name], name
    assert sorted(layout.identity_names()) == sorted(listed)


def test_tx_as_an_oracle_identity_gets_past_choosing_the_key(tmp_path: Path) -> None:
    # No node runs: the command fails at sending, after it found oracle-node0's key.
    assert _init(tmp_path).exit_code == 0
    args = ["machines", "report", "machine=m1", "--as", "oracle-node0", "--dir", str(tmp_path)]
    result = CliRunner().invoke(main, ["tx", *args])
    assert result.exit_code == 1, result.output
    assert "no identity named" not in result.output
    assert "no node answered" in result.output


def test_an_unknown_identity_names_the_known_ones_oracles_included(tmp_path: Path) -> None:
    assert _init(tmp_path).exit_code == 0
    result = CliRunner().invoke(main, ["tx", "a", "b", "--as", "nobody", "--dir", str(tmp_path)])
    _one_line_error(result, "no identity named 'nobody'; known: admin, auditor")
    assert "oracle-node3" in result.output


def test_init_fsync_turns_it_on_for_every_node(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    result = _init(directory, "--fsync", "--observers", "1")
    assert result.exit_code == 0, result.output
    layout = ClusterDir(directory)
    assert [layout.config(name).fsync for name in layout.node_names()] == [True] * 5
    plain = tmp_path / "plain"
    assert _init(plain).exit_code == 0
    assert not any(ClusterDir(plain).config(name).fsync for name in ClusterDir(plain).node_names())


def test_bench_fsync_is_refused_with_a_running_cluster(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    assert _init(directory).exit_code == 0
    result = CliRunner().invoke(main, ["bench", "--dir", str(directory), "--fsync"])
    assert result.exit_code == 2, result.output
    assert "--fsync" in result.output and "millchain init --fsync" in result.output
