"""GET /explorer/views on a node with a long record of views: the answer, built on the node's
event loop and sent to every open views tab every few seconds, carries a bounded number of the
node's own view records however many views it has entered since it started."""

from __future__ import annotations

from node.explorer import OBSERVED_VIEWS_MAX
from node.service import VIEW_HISTORY_MAX, Node
from tests.node.conftest import Client

# Views a validator may enter in a long run with a flaky primary (a timeout each).
VIEWS_ENTERED = 50_000


async def test_views_answers_only_the_newest_of_the_nodes_view_records(
    node: Node,
    explorer_client: Client,
) -> None:
    # The node's own record, in the shape its ViewEntered handler appends (node/service.py).
    for view in range(1, VIEWS_ENTERED + 1):
        node.view_history.append((view, 1_700_000_000_000 + view, 0))
    node.counters.view_changes += VIEWS_ENTERED
    response = await explorer_client.get("/explorer/views")
    assert response.status == 200
    body = await response.json()
    assert len(body["node"]) <= OBSERVED_VIEWS_MAX, len(body["node"])
    # The newest are kept, and the count of all is still there to say how many were left out.
    assert body["node"][-1]["view"] == VIEWS_ENTERED
    assert body["view_changes"] >= VIEWS_ENTERED
    # The node's record itself stays bounded too.
    assert len(node.view_history) <= VIEW_HISTORY_MAX
