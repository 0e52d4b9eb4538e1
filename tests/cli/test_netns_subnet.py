"""`scripts/netns.py` refuses a malformed --subnet with its one-line error and exit code 1, as
it refuses a bad tag or node count, instead of ending in an ipaddress traceback. The check comes
before any namespace or link is made, so it runs anywhere (no root needed)."""

from __future__ import annotations

import pytest

from scripts.netns import main


@pytest.mark.parametrize("subnet", ["10.77", "10.77.300", "10.77.0.1", "lab"])
def test_a_malformed_subnet_is_refused_with_an_error_not_a_traceback(
    subnet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--tag", "rvw", "--subnet", subnet]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and subnet in error, error
