"""The protocol version: which peers a node can run a chain with, and which logs it can replay.

One number covers everything one node's code must read as another's wrote it: the consensus
messages and what their signatures cover (consensus/messages.py, consensus/codec.py), the blocks,
transactions and certificates they carry (ledger/), the peer routes (node/api.py), and the
consensus log a node keeps in its database (node/wal.py). Nodes of two versions cannot run one
chain: at best they agree until the first message whose meaning changed (a view change, for 1
and 2), then the chain stalls. So they refuse each other up front, and say why.

The number lives here rather than in consensus/ or ledger/ because it versions what the node
shell exchanges and stores, which is more than either package defines (the peer routes, the
log), and those packages stay free of peers and disks; a change in any of them that makes old and
new nodes misread each other raises it, and adds a line below.

Versions:
  1  the protocol before the number was stated: a link or a database that states none speaks 1.
  2  a view change is signed over its summary (consensus.messages.ViewChangeSummary: each
     prepared proof with its block by header), and a NEW-VIEW carries those summaries with each
     re-proposed block once; blocks are bounded by Genesis.block_bytes_max. A view change or a
     logged NEW-VIEW of version 1 no longer verifies.

Where it is checked: the database records the version its chain and log were written with
(node/storage.py), and a node refuses to start on one of another version.
"""

from __future__ import annotations

PROTOCOL_VERSION = 2
# What a peer or a database that states no version speaks.
UNSTATED_VERSION = 1
