"""The stage clock: a block's stage durations come from the marks this node made for it, the
first mark of a stage counts, blocks that never execute here do not pile up, and the summary
and the metrics log cover what was timed."""

from __future__ import annotations

import pytest

from node.stages import BLOCK_STAGES, MARKS_BEHIND_MAX, STAGES, StageClock

BLOCK = bytes(32)  # the hash of the block timed, unless a test has two blocks for a number


def time_block(
    clock: StageClock, seq: int, proposed_ms: int, marks: tuple[float, float, float, float, float]
) -> dict[str, float]:
    """Take block `seq` through every stage: arrived, pre-prepared, prepared, committed and
    executed at the times in `marks`."""
    arrived, pre_prepared, prepared, committed, executed = marks
    clock.arrived(seq, BLOCK, at_ms=arrived)
    clock.pre_prepared(seq, BLOCK, at_ms=pre_prepared)
    clock.prepared(seq, BLOCK, at_ms=prepared)
    clock.committed(seq, BLOCK, at_ms=committed)
    return clock.executed(seq, BLOCK, proposed_ms=proposed_ms, at_ms=executed)


def test_a_block_has_each_stage_between_consecutive_marks() -> None:
    clock = StageClock()
    durations = time_block(clock, 7, 998, (980.0, 1_000.5, 1_004.0, 1_010.0, 1_030.0))
    assert durations == {
        "propose": pytest.approx(20.5),
        "pre_prepare": pytest.approx(2.5),
        "prepare": pytest.approx(3.5),
        "commit": pytest.approx(6.0),
        "execute": pytest.approx(20.0),
    }
    assert clock.in_flight == 0


def test_the_first_mark_counts_when_a_stage_is_reached_again() -> None:
    clock = StageClock()
    clock.pre_prepared(3, BLOCK, at_ms=100.0)
    clock.pre_prepared(3, BLOCK, at_ms=150.0)  # a retransmitted pre-prepare answered again
    clock.prepared(3, BLOCK, at_ms=160.0)
    clock.prepared(3, BLOCK, at_ms=400.0)
    clock.committed(3, BLOCK, at_ms=170.0)
    durations = clock.executed(3, BLOCK, proposed_ms=90, at_ms=171.0)
    assert durations["prepare"] == pytest.approx(60.0)
    assert durations["commit"] == pytest.approx(10.0)


def test_another_block_for_the_number_after_a_view_change_is_timed_on_its_own() -> None:
    # The old view's primary proposed one block for 4; the new primary proposed another, which
    # committed. Its stages start at its own pre-prepare, not at the dropped one's.
    clock = StageClock()
    dropped, proposed = b"\x01" * 32, b"\x02" * 32
    clock.pre_prepared(4, dropped, at_ms=1_000.0)
    clock.prepared(4, dropped, at_ms=1_005.0)
    clock.pre_prepared(4, proposed, at_ms=4_503.0)
    clock.prepared(4, proposed, at_ms=4_506.0)
    clock.committed(4, proposed, at_ms=4_510.0)
    durations = clock.executed(4, proposed, proposed_ms=4_500, at_ms=4_512.0)
    assert durations == {
        "pre_prepare": pytest.approx(3.0),
        "prepare": pytest.approx(3.0),
        "commit": pytest.approx(4.0),
        "execute": pytest.approx(2.0),
    }
    assert clock.in_flight == 0  # the dropped block's marks went with it


def test_stages_without_both_ends_are_left_out() -> None:
    """A backup has no `propose` stage; a block this node committed without having prepared it
    here (it learnt the commit certificate from the others) times only what it saw."""
    clock = StageClock()
    clock.committed(5, BLOCK, at_ms=50.0)
    durations = clock.executed(5, BLOCK, proposed_ms=10, at_ms=58.0)
    assert durations == {"execute": pytest.approx(8.0)}
    summary = clock.summary()
    assert summary["execute"]["count"] == 1
    assert summary["prepare"] == {"count": 0, "p50_ms": None, "p90_ms": None}


def test_clock_skew_shows_as_a_negative_pre_prepare() -> None:
    clock = StageClock()
    clock.pre_prepared(1, BLOCK, at_ms=1_000.0)
    assert clock.executed(1, BLOCK, proposed_ms=1_004, at_ms=1_001.0)["pre_prepare"] == -4.0


def test_marks_of_blocks_that_never_execute_here_are_dropped() -> None:
    clock = StageClock()
    for seq in range(1, 200):
        clock.pre_prepared(seq, BLOCK, at_ms=float(seq))
    clock.executed(199, BLOCK, proposed_ms=0, at_ms=500.0)
    assert clock.in_flight == MARKS_BEHIND_MAX - 1  # 136..198 are recent enough to keep


def test_the_summary_covers_the_most_recent_blocks_and_batches() -> None:
    clock = StageClock(recent_max=10)
    for seq in range(1, 31):
        clock.pre_prepared(seq, BLOCK, at_ms=seq * 100.0)
        clock.prepared(seq, BLOCK, at_ms=seq * 100.0 + seq)  # prepare lasts `seq` ms
        clock.committed(seq, BLOCK, at_ms=seq * 100.0 + 50)
        clock.executed(seq, BLOCK, proposed_ms=seq * 100, at_ms=seq * 100.0 + 60)
    for ms in (5.0, 15.0, 25.0):
        clock.admitted(arrived_ms=1_000.0, at_ms=1_000.0 + ms)
    summary = clock.summary()
    assert set(summary) == set(STAGES)
    # Blocks 21..30 are the last ten: their prepares lasted 21..30 ms.
    assert summary["prepare"] == {"count": 10, "p50_ms": 25.5, "p90_ms": 30.0}
    assert summary["execute"] == {"count": 10, "p50_ms": 10.0, "p90_ms": 10.0}
    assert summary["admission"] == {"count": 3, "p50_ms": 15.0, "p90_ms": 25.0}


def test_listeners_hear_each_duration_once_as_it_is_timed() -> None:
    clock = StageClock()
    heard: list[tuple[str, float]] = []
    time_block(clock, 1, 9, (5.0, 10.0, 11.0, 12.0, 13.0))  # before subscribing: not heard
    clock.subscribe(lambda stage, ms: heard.append((stage, ms)))
    time_block(clock, 2, 9, (5.0, 10.0, 11.0, 12.0, 13.0))
    assert [stage for stage, _ in heard] == list(BLOCK_STAGES)
    heard.clear()
    clock.admitted(arrived_ms=0.0, at_ms=7.0)
    assert heard == [("admission", 7.0)]
