"""View change and new view at one replica, driven message by message."""

from __future__ import annotations

import dataclasses

from consensus import messages as m
from consensus.actions import Action, Send, ViewEntered
from consensus.events import BlocksTransferred, RequestsPending, Tick
from consensus.sim.harness import AcceptAll
from consensus.viewchange import blocks_for, check_view_change, choose_blocks
from ledger.block import Block
from tests.consensus.pbft_bench import (
    GENESIS,
    GENESIS_DIGEST,
    GENESIS_TIME_MS,
    Bench,
    broadcasts,
    commits,
    make_tx,
    rejections,
    tamper_txs,
)

TIMEOUT_MS = 2_000


def time_out(bench: Bench, *, at_ms: int = TIMEOUT_MS) -> list[Action]:
    bench.replica.handle(RequestsPending(now_ms=0, pending=True))
    return bench.replica.handle(Tick(now_ms=at_ms))


def only_view_change(actions: list[Action]) -> m.ViewChange:
    [view_change] = broadcasts(actions, m.ViewChange)
    return view_change


def sends(actions: list[Action]) -> list[tuple[int, m.Message]]:
    return [(action.to, action.message) for action in actions if isinstance(action, Send)]


def test_pending_requests_arm_a_deadline_and_tick_fires_a_view_change() -> None:
    bench = Bench()
    replica = bench.replica
    assert replica.handle(Tick(now_ms=10_000)) == []  # nothing pending: no deadline
    replica.handle(RequestsPending(now_ms=10_000, pending=True))
    assert replica.view_change_deadline_ms == 12_000
    replica.handle(RequestsPending(now_ms=11_000, pending=True))  # already armed: unchanged
    assert replica.view_change_deadline_ms == 12_000
    replica.handle(RequestsPending(now_ms=11_500, pending=False))
    assert replica.view_change_deadline_ms is None
    replica.handle(RequestsPending(now_ms=20_000, pending=True))
    view_change = only_view_change(replica.handle(Tick(now_ms=22_000)))
    assert view_change.new_view == 1 and (replica.view, replica.view_active) == (1, False)


def test_commits_push_the_deadline_back() -> None:
    bench = Bench()
    bench.replica.handle(RequestsPending(now_ms=0, pending=True))
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block), now_ms=1_500)
    bench.deliver(bench.prepare(block, 2), bench.commit(block, 0), now_ms=1_500)
    assert commits(bench.deliver(bench.commit(block, 3), now_ms=1_900))
    assert bench.replica.view_change_deadline_ms == 3_900


def test_a_starved_request_sets_a_deadline_commits_do_not_push_back() -> None:
    bench = Bench()  # replica 1, a backup in view 0
    replica = bench.replica
    replica.handle(RequestsPending(now_ms=0, pending=True, starved_since_ms=500))
    assert replica.view_change_deadline_ms == 2_000  # the commit deadline comes first
    for height, now_ms in ((1, 1_500), (2, 3_000)):
        block = bench.block(height)
        bench.deliver(bench.pre_prepare(block), now_ms=now_ms)
        bench.deliver(bench.prepare(block, 2), bench.commit(block, 0), now_ms=now_ms)
        assert commits(bench.deliver(bench.commit(block, 3), now_ms=now_ms))
    # Commits pushed theirs to 5_000; the starved request's stays twice the timeout after 500.
    assert replica.view_change_deadline_ms == 4_500
    assert replica.handle(Tick(now_ms=4_400)) == []
    view_change = only_view_change(replica.handle(Tick(now_ms=4_500)))
    assert view_change.new_view == 1 and replica.view_change_deadline_ms is None


def test_a_starved_request_is_forgotten_once_nothing_starves() -> None:
    bench = Bench()
    replica = bench.replica
    replica.handle(RequestsPending(now_ms=0, pending=True, starved_since_ms=0))
    replica.handle(RequestsPending(now_ms=100, pending=True))  # the sender moved on
    assert replica.view_change_deadline_ms == 2_000
    replica.handle(RequestsPending(now_ms=200, pending=True, starved_since_ms=0))
    replica.handle(RequestsPending(now_ms=300, pending=False))
    assert replica.view_change_deadline_ms is None


def test_a_primary_sets_no_deadline_for_a_starved_request() -> None:
    bench = Bench(index=0)  # the primary of view 0 cuts the blocks itself
    bench.replica.handle(RequestsPending(now_ms=0, pending=True, starved_since_ms=-10_000))
    assert bench.replica.view_change_deadline_ms == 2_000
    assert bench.replica.handle(Tick(now_ms=1_000)) == []


def test_view_change_message_carries_prepared_certificates() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    bench.deliver(bench.prepare(first, 2), bench.prepare(second, 2))  # both prepared
    view_change = only_view_change(time_out(bench))
    assert view_change.base_height == 0 and view_change.base_header is None
    assert [proof.seq for proof in view_change.prepared] == [1, 2]
    proof = view_change.prepared[1]
    assert proof.pre_prepare.block == second
    assert sorted(p.sender for p in proof.prepares) == [1, 2]
    check_view_change(view_change, bench.config, m.plain_verifier, AcceptAll())
    m.verify_signature(view_change, bench.config.chain_id, bench.validators)


def test_view_change_base_is_the_committed_head_with_its_certificate() -> None:
    bench = Bench()
    first, second = bench.chain(2)
    bench.deliver(bench.pre_prepare(first), bench.pre_prepare(second))
    bench.commit_block(first)
    bench.deliver(bench.prepare(second, 2))
    view_change = only_view_change(time_out(bench))
    assert view_change.base_header == first.header
    assert view_change.base_certificate is not None
    assert view_change.base_certificate.block_hash == first.hash
    assert [proof.seq for proof in view_change.prepared] == [2]
    check_view_change(view_change, bench.config, m.plain_verifier, AcceptAll())


def test_new_view_re_proposes_the_block_committed_before_the_view_change() -> None:
    # Replica 1 is the primary of view 1. Block 1 committed at replica 3 in view 0; replicas 1
    # and 2 only prepared it. After the view change, block 1 is still the block at seq 1.
    bench = Bench(index=1)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block), bench.prepare(block, 2))
    time_out(bench)
    proof = bench.proof(block)
    actions = bench.deliver(
        bench.view_change(2, 1, (proof,)), bench.view_change(3, 1, (proof,)), now_ms=2_100
    )
    [new_view] = broadcasts(actions, m.NewView)
    assert ViewEntered(view=1) in actions
    assert [vc.sender for vc in new_view.view_changes] == [1, 2, 3]
    [pre_prepare] = new_view.pre_prepares
    assert (pre_prepare.view, pre_prepare.seq, pre_prepare.block) == (1, 1, block)
    assert pre_prepare.block.header.view == 0  # re-proposed unchanged
    replica = bench.replica
    assert (replica.view, replica.view_active, replica.next_seq) == (1, True, 2)
    prepares = [bench.prepare(block, sender, view=1) for sender in (2, 3)]
    bench.deliver(*prepares, now_ms=2_200)
    [committed] = commits(
        bench.deliver(bench.commit(block, 2, view=1), bench.commit(block, 3, view=1))
    )
    assert committed.block == block and committed.certificate.view == 1


def test_backup_installs_a_valid_new_view_and_prepares_its_blocks() -> None:
    bench = Bench(index=2)
    block = bench.block(1)
    proof = bench.proof(block)
    changes = (bench.view_change(0, 1), bench.view_change(1, 1, (proof,)), bench.view_change(3, 1))
    new_view = sign_new_view(bench, changes, (block,))
    actions = bench.deliver(new_view)
    assert ViewEntered(view=1) in actions
    [prepare] = broadcasts(actions, m.Prepare)
    assert (prepare.view, prepare.seq, prepare.block_hash) == (1, 1, block.hash)


def sign_new_view(
    bench: Bench, changes: tuple[m.ViewChange, ...], blocks: tuple[Block, ...], view: int = 1
) -> m.NewView:
    return bench.new_view(changes, blocks, view=view)


def test_new_view_with_a_forged_or_inconsistent_choice_is_rejected() -> None:
    bench = Bench(index=2)
    block = bench.block(1)
    other = bench.block(1, timestamp_ms=GENESIS_TIME_MS + 77)
    proof = bench.proof(block)
    changes = (bench.view_change(0, 1), bench.view_change(1, 1, (proof,)), bench.view_change(3, 1))
    cases = {
        "not the block the view changes imply": sign_new_view(bench, changes, (other,)),
        "re-proposes 0 blocks": sign_new_view(bench, changes, ()),
        "needs 3 view changes": sign_new_view(bench, changes[:2], (block,)),
        "bad signature": sign_new_view(
            bench,
            (changes[0], dataclasses.replace(changes[1], signature=bytes(64)), changes[2]),
            (block,),
        ),
    }
    for complaint, new_view in cases.items():
        actions = bench.deliver(new_view)
        [rejected] = rejections(actions)
        assert complaint in rejected.reason, (complaint, rejected.reason)
        assert bench.replica.view == 0 and not broadcasts(actions)
    forged_proof = dataclasses.replace(proof, prepares=proof.prepares[:1])
    forged = bench.view_change(1, 1, (forged_proof,))
    [rejected] = rejections(bench.deliver(forged))
    assert "has 1 prepares, needs 2" in rejected.reason


def test_a_re_proposed_block_whose_transactions_are_not_its_headers_is_rejected() -> None:
    # The pre-prepare and the prepares sign the header's hash; only the header's tx_root ties
    # the transactions to it. A block decoded off the wire is checked as it is decoded, but the
    # replica takes messages from anyone who builds them, and must not execute transactions
    # that no quorum prepared.
    bench = Bench(index=2)
    block = bench.block(1)
    forged = tamper_txs(block, (make_tx(99),))
    assert forged.hash == block.hash
    changes = (
        bench.view_change(0, 1),
        bench.view_change(1, 1, (bench.proof(block),)),
        bench.view_change(3, 1),
    )
    actions = bench.deliver(sign_new_view(bench, changes, (forged,)))
    [rejected] = rejections(actions)
    assert "tx_root" in rejected.reason, rejected.reason
    assert bench.replica.view == 0 and not broadcasts(actions)
    # The same forgery inside a prepared proof, which a new view would re-propose.
    actions = bench.deliver(bench.view_change(1, 1, (bench.proof(forged),)))
    [rejected] = rejections(actions)
    assert "tx_root" in rejected.reason, rejected.reason
    # The genuine new view is still taken.
    assert ViewEntered(view=1) in bench.deliver(sign_new_view(bench, changes, (block,)))


def _choose(changes: list[m.ViewChange], bench: Bench, *, view: int) -> tuple[Block, ...]:
    """The blocks a new primary re-proposes: chosen by the summaries, taken from the changes."""
    summaries = [change.summary() for change in changes]
    choice = choose_blocks(summaries, view=view, config=bench.config, genesis=GENESIS)
    return blocks_for(choice, changes)


def test_null_blocks_fill_gaps_and_everything_after_a_broken_chain() -> None:
    bench = Bench()
    first, second, third = bench.chain(3)
    stray = bench.block(3, prev_hash=b"\x42" * 32)
    changes = [
        bench.view_change(0, 1, (bench.proof(first), bench.proof(third))),
        bench.view_change(1, 1, (bench.proof(first),)),
        bench.view_change(2, 1),
    ]
    chosen = _choose(changes, bench, view=1)
    assert [block.height for block in chosen] == [1, 2, 3]
    assert chosen[0] == first  # prepared and chains to the base
    assert chosen[1].txs == () and chosen[1].header.prev_hash == first.hash  # gap: null
    assert chosen[2] != third and chosen[2].txs == ()  # third chains to the real block 2, not null
    assert chosen[2].header.prev_hash == chosen[1].hash
    assert (chosen[1].header.proposer, chosen[1].header.view) == (1, 1)
    with_stray = [bench.view_change(0, 1, (bench.proof(first), bench.proof(second))), *changes[1:]]
    with_stray.append(bench.view_change(3, 1, (bench.proof(first), bench.proof(stray, view=0))))
    blocks = _choose(with_stray, bench, view=1)
    assert blocks[:2] == (first, second)
    assert blocks[2].txs == () and blocks[2].header.prev_hash == second.hash  # stray breaks it


def test_highest_view_certificate_wins() -> None:
    bench = Bench()
    old = bench.block(1)
    newer = bench.block(1, timestamp_ms=GENESIS_TIME_MS + 9)
    changes = [
        bench.view_change(0, 3, (bench.proof(old, view=0),)),
        bench.view_change(2, 3, (bench.proof(newer, view=2),)),
        bench.view_change(3, 3),
    ]
    assert _choose(changes, bench, view=3) == (newer,)


def test_f_plus_1_higher_view_changes_pull_a_lagging_replica() -> None:
    bench = Bench(index=1)
    assert not broadcasts(bench.deliver(bench.view_change(2, 3)), m.ViewChange)
    view_change = only_view_change(bench.deliver(bench.view_change(3, 2)))
    assert view_change.new_view == 2  # the smallest of the views f+1 replicas asked for
    assert bench.replica.view == 2 and not bench.replica.view_active


def test_a_replica_cut_off_while_the_others_changed_view_joins_them_once_it_hears_them() -> None:
    # Replica 1 missed view 2's view changes and NEW-VIEW (a partition); the others work in
    # view 2. Their prepares and commits, refused as from a future view, used to leave it in
    # view 0 until the next view change: f+1 senders working in view 2 now take it there, and
    # the NEW-VIEW an active replica sends back to its view change installs the view.
    bench = Bench(index=1)
    block = bench.block(1, view=2, proposer=2)
    assert not broadcasts(bench.deliver(bench.commit(block, 0, view=2)), m.ViewChange)
    assert not broadcasts(bench.deliver(bench.commit(block, 0, view=2)), m.ViewChange)  # again
    view_change = only_view_change(bench.deliver(bench.prepare(block, 3, view=2)))
    assert view_change.new_view == 2
    assert bench.replica.view == 2 and not bench.replica.view_active
    changes = (bench.view_change(0, 2), bench.view_change(2, 2), bench.view_change(3, 2))
    actions = bench.deliver(sign_new_view(bench, changes, (), view=2))
    assert ViewEntered(view=2) in actions and bench.replica.view_active


def test_equivocation_seen_in_prepares_triggers_a_view_change() -> None:
    bench = Bench(index=1)
    block = bench.block(1)
    other = bench.block(1, timestamp_ms=GENESIS_TIME_MS + 5)
    bench.deliver(bench.pre_prepare(block))
    assert not broadcasts(bench.deliver(bench.prepare(other, 2)), m.ViewChange)
    assert only_view_change(bench.deliver(bench.prepare(other, 3))).new_view == 1


def _to_view_3_as_its_primary(bench: Bench) -> None:
    """Replica 3 times out of views 0, 1 and 2 without a commit and installs view 3 at 8.3 s."""
    time_out(bench)
    bench.deliver(bench.view_change(0, 1), bench.view_change(2, 1), now_ms=2_100)
    bench.replica.handle(Tick(now_ms=4_100))
    bench.deliver(bench.view_change(0, 2), bench.view_change(1, 2), now_ms=4_200)
    bench.replica.handle(Tick(now_ms=8_200))
    bench.deliver(bench.view_change(0, 3), bench.view_change(1, 3), now_ms=8_300)
    assert (bench.replica.view, bench.replica.view_active) == (3, True)


def test_view_change_timeouts_back_off_exponentially_and_the_new_view_waits_for_progress() -> None:
    bench = Bench(index=3)
    replica = bench.replica
    assert only_view_change(time_out(bench)).new_view == 1
    assert replica.view_change_deadline_ms is None  # armed once 2f+1 view changes are in
    bench.deliver(bench.view_change(0, 1), bench.view_change(2, 1), now_ms=2_100)
    assert replica.view_change_deadline_ms == 2_100 + TIMEOUT_MS
    assert only_view_change(replica.handle(Tick(now_ms=4_100))).new_view == 2
    bench.deliver(bench.view_change(0, 2), bench.view_change(1, 2), now_ms=4_200)
    assert replica.view_change_deadline_ms == 4_200 + 2 * TIMEOUT_MS
    assert only_view_change(replica.handle(Tick(now_ms=8_200))).new_view == 3
    # Replica 3 is the primary of view 3: with 2f+1 view changes it sends the new view.
    actions = bench.deliver(bench.view_change(0, 3), bench.view_change(1, 3), now_ms=8_300)
    assert broadcasts(actions, m.NewView) and ViewEntered(view=3) in actions
    # Three views entered since the last commit: the new view gets 2^3 timeouts to commit,
    # since a cluster that changed view three times without progress is most likely short of
    # CPU rather than led by faulty primaries three times over.
    assert replica.view_active and replica.view_change_deadline_ms == 8_300 + 8 * TIMEOUT_MS


def test_a_commit_brings_the_deadline_back_to_the_base_timeout() -> None:
    bench = Bench(index=3)
    replica = bench.replica
    _to_view_3_as_its_primary(bench)
    assert replica.view_change_deadline_ms == 8_300 + 8 * TIMEOUT_MS
    block = bench.block(1)
    replica.handle(
        BlocksTransferred(
            header=block.header,
            certificate=bench.certificate(block),
            state_digest=GENESIS_DIGEST,
            now_ms=9_000,
        )
    )
    assert replica.committed_height == 1
    assert replica.view_change_deadline_ms == 9_000 + TIMEOUT_MS
    # and a later time-out in view 3 is a view change after the base timeout
    assert only_view_change(replica.handle(Tick(now_ms=9_000 + TIMEOUT_MS))).new_view == 4


def test_the_normal_case_deadline_stops_doubling_at_sixteen_timeouts() -> None:
    """Replica 1 leads views 1 and 5; it times out of every view without a commit."""
    bench = Bench(index=1)
    replica = bench.replica
    replica.handle(RequestsPending(now_ms=0, pending=True))
    installed: dict[int, int] = {}  # view -> its normal-case wait
    for view in range(1, 6):
        now = replica.view_change_deadline_ms
        assert now is not None
        assert only_view_change(replica.handle(Tick(now_ms=now))).new_view == view
        others = [bench.view_change(i, view) for i in (0, 2, 3) if i != view % bench.n][:2]
        bench.deliver(*others, now_ms=now)
        if replica.view_active:
            deadline = replica.view_change_deadline_ms
            assert deadline is not None
            installed[view] = deadline - now
    assert installed == {1: 2 * TIMEOUT_MS, 5: 16 * TIMEOUT_MS}  # 2^5 capped at 2^4


def test_active_replicas_answer_a_late_view_change_with_their_new_view() -> None:
    bench = Bench(index=1)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block), bench.prepare(block, 2))
    time_out(bench)
    proof = bench.proof(block)
    actions = bench.deliver(bench.view_change(2, 1, (proof,)), bench.view_change(3, 1, (proof,)))
    [new_view] = broadcasts(actions, m.NewView)
    late = bench.deliver(bench.view_change(0, 1), now_ms=3_000)
    assert sends(late) == [(0, new_view)]


def test_a_replica_gone_on_to_the_next_view_resends_its_view_change_to_one_still_waiting() -> None:
    # Replica 3 saw 2f+1 view changes for view 1 and timed out of it, but its own view change
    # for view 1 never reached replica 1, the primary of view 1, which holds only two (its own
    # and 2's). Replica 1 never arms a timer and keeps resending; replica 3's answer is its view
    # change for view 1, which lets 1 send the new view (and, with no quorum in it, time out of
    # view 1 and join 3 in view 2).
    bench = Bench(index=3)
    replica = bench.replica
    mine = only_view_change(time_out(bench))
    bench.deliver(bench.view_change(1, 1), bench.view_change(2, 1), now_ms=2_100)
    assert only_view_change(replica.handle(Tick(now_ms=4_100))).new_view == 2
    assert sends(bench.deliver(bench.view_change(1, 1), now_ms=4_600)) == [(1, mine)]
    assert not sends(bench.deliver(bench.view_change(1, 1), now_ms=4_700))  # once an interval
    assert sends(bench.deliver(bench.view_change(2, 1), now_ms=4_700)) == [(2, mine)]


def test_a_pre_prepare_at_or_below_the_new_views_base_is_refused() -> None:
    # Block 1 committed at replica 0 only, and the new view (primary 1) starts from it as its
    # base. Replica 2 has not fetched block 1 yet when the primary offers it another block 1.
    bench = Bench(index=2)
    block = bench.block(1)
    changes = (
        bench.view_change(0, 1, base=block),
        bench.view_change(1, 1),
        bench.view_change(3, 1),
    )
    assert ViewEntered(view=1) in bench.deliver(sign_new_view(bench, changes, ()))
    other = bench.block(1, proposer=1, view=1, timestamp_ms=GENESIS_TIME_MS + 99)
    actions = bench.deliver(bench.pre_prepare(other, view=1, sender=1))
    [rejected] = rejections(actions)
    assert "at or below the base 1 of view 1" in rejected.reason
    assert not broadcasts(actions, m.Prepare)


def test_a_pre_prepare_with_another_block_for_a_committed_height_is_refused() -> None:
    # Replica 2 committed block 1. The new view's view changes report nothing (a faulty primary
    # may pick any 2f+1), so its base is the chain's start, and its primary then offers another
    # block 1: a vote for it would help certify a second block at a committed height.
    bench = Bench(index=2)
    block = bench.block(1)
    bench.deliver(bench.pre_prepare(block))
    assert commits(bench.commit_block(block))
    changes = (bench.view_change(0, 1), bench.view_change(1, 1), bench.view_change(3, 1))
    assert ViewEntered(view=1) in bench.deliver(sign_new_view(bench, changes, ()))
    other = bench.block(1, proposer=1, view=1, timestamp_ms=GENESIS_TIME_MS + 99)
    actions = bench.deliver(bench.pre_prepare(other, view=1, sender=1))
    [rejected] = rejections(actions)
    assert "is committed at seq 1" in rejected.reason
    assert not broadcasts(actions, m.Prepare) and not broadcasts(actions, m.Commit)


def test_a_pre_prepare_below_the_base_that_came_before_the_new_view_is_refused_after_it() -> None:
    # Replica 2 is changing to view 1 when the primary's pre-prepare for another block 1 comes:
    # it waits in its slot, since the view is not installed. The new view then starts from
    # block 1 (committed elsewhere) as its base, and the waiting block must not get a vote.
    bench = Bench(index=2)
    time_out(bench)
    assert (bench.replica.view, bench.replica.view_active) == (1, False)
    other = bench.block(1, proposer=1, view=1, timestamp_ms=GENESIS_TIME_MS + 99)
    assert not broadcasts(bench.deliver(bench.pre_prepare(other, view=1, sender=1)))
    block = bench.block(1)
    changes = (
        bench.view_change(0, 1, base=block),
        bench.view_change(1, 1),
        bench.view_change(3, 1),
    )
    actions = bench.deliver(sign_new_view(bench, changes, ()), now_ms=2_100)
    assert ViewEntered(view=1) in actions
    assert not broadcasts(actions, m.Prepare)
    assert any("at or below the base 1 of view 1" in r.reason for r in rejections(actions))
