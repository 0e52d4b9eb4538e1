"""A transaction's wire map in a fetched block is read within a budget, as the block is.

decode_certified_block decodes the block with a container budget (the map, its header and its
list of transactions), but then unpacked each transaction's wire bytes with plain msgpack
before the transactions' ids were checked against the certified header's tx_root. A peer
serving history (node/history.py) needs only a genuine certified header at the height asked
for, which any validator holds, and can put in place of its transactions one "wire" of nested
empty lists: a byte each, some 64 bytes each once built. An answer is read up to
HISTORY_BYTES_MAX (64 MiB) before it is checked, so one answer could make the catching-up node
build some 4 GiB of lists on its event loop before refusing the block; and it asks again at
every idle sync.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.encoding import encode
from node.sync import SyncError, decode_certified_block
from tests.consensus.pbft_bench import Bench
from tests.node.decoded import bounded, empty_lists, peak_under


def test_a_transaction_wire_of_nested_lists_in_a_certified_block_is_refused_cheaply() -> None:
    bench = Bench()
    [block] = bench.chain(1)
    lists: list[list[Any]] = empty_lists()
    wire = encode(lists)  # where a transaction's {"body", "signature"} map belongs
    raw = encode({"header": block.header.to_map(), "txs": [wire]})
    with peak_under(bounded(raw)), pytest.raises(SyncError):
        decode_certified_block(raw, bench.certificate(block))
