"""A node's fault rules kept in its data directory: a restarted node starts with the rules and
seed it had, a malformed file stops it with a message naming the file, and a change the disk
refuses changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.errors import ConfigError, Rejection
from node.faults import FaultInjector, LinkFaults


def test_rules_and_seed_outlive_the_process_until_cleared(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    assert FaultInjector.kept_at(path).rules == {}
    first = FaultInjector.kept_at(path)
    first.reseed(7)
    first.set("node1", LinkFaults(blocked=True))
    first.set("node2", LinkFaults(delay_ms=40, jitter_ms=5, loss=0.25))
    first.set("node3", LinkFaults(duplicate=0.5))
    first.set("node3", LinkFaults())  # a clear rule is no rule

    again = FaultInjector.kept_at(path)
    assert again.seed == 7
    assert again.rules == first.rules
    assert again.is_blocked("node1") and not again.is_blocked("node2")
    assert [again.decide("node2") for _ in range(20)] == [first.decide("node2") for _ in range(20)]

    again.clear("node1")
    assert set(FaultInjector.kept_at(path).rules) == {"node2"}
    again.clear()
    assert FaultInjector.kept_at(path).rules == {}
    assert [p.name for p in tmp_path.iterdir()] == ["faults.json"]  # no partial file left


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps({"rules": {}}),
        json.dumps({"seed": "7", "rules": {}}),
        json.dumps({"seed": 1, "rules": {"node1": {"blocked": "yes"}}}),
        json.dumps({"seed": 1, "rules": {"node1": {"latency": 5}}}),
        json.dumps({"seed": 1, "rules": ["node1"]}),
        json.dumps({"seed": 1, "rules": {"node1": True}}),
    ],
)
def test_a_malformed_file_stops_the_node_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "faults.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="delete the file to start the node with none") as err:
        FaultInjector.kept_at(path)
    assert str(path) in str(err.value)


def test_a_change_the_disk_refuses_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    faults = FaultInjector.kept_at(path)
    faults.set("node1", LinkFaults(blocked=True))
    kept = path.read_text(encoding="utf-8")
    path.unlink()
    path.mkdir()  # where the file goes, a folder (with a file in it) that nothing replaces
    (path / "x").write_text("", encoding="utf-8")
    with pytest.raises(Rejection, match="cannot keep the fault rules") as err:
        faults.set("node2", LinkFaults(blocked=True))
    assert err.value.status == 500
    with pytest.raises(Rejection):
        faults.reseed(9)
    with pytest.raises(Rejection):
        faults.clear()
    assert set(faults.rules) == {"node1"} and faults.seed == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faults.json"]
    (path / "x").unlink()
    path.rmdir()
    path.write_text(kept, encoding="utf-8")
    assert set(FaultInjector.kept_at(path).rules) == {"node1"}
