"""How `millchain tx --wait` prints a receipt: a failure that did not use the nonce (a later
block may still run the transaction) says it is not settled; a settled one says FAILED alone."""

from __future__ import annotations

from typing import Any

import pytest

from cli.client_cmd import print_receipt


def _answer(**extra: Any) -> dict[str, Any]:
    return {
        "status": "committed",
        "height": 7,
        "tx": {"hash": "ab" * 32},
        "receipt": {"ok": False, "error": "nonce 5 is ahead of the next nonce 4", "events": []},
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "unsettled"),
    [({"settled": False}, True), ({"settled": True}, False), ({}, False)],
)
def test_an_unsettled_failure_says_so(
    capsys: pytest.CaptureFixture[str], extra: dict[str, Any], unsettled: bool
) -> None:
    print_receipt(_answer(**extra))
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"committed {'ab' * 32} at height 7: FAILED: nonce 5 is ahead")
    assert ("not settled" in line) is unsettled
