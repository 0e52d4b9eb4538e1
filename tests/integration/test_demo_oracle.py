"""`millchain demo`'s oracle act: the validators hold the registered model before the machine
reports, so the oracle flags it before it fails, and every prediction is final when verified."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.process import read_pid

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_oracle_flags_the_machine_before_it_fails(tmp_path: Path) -> None:
    # The demo makes its cluster under TMPDIR: whatever it leaves running is found and killed.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cli", "demo", "--scenario-hours", "0"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
    finally:
        for pid_file in tmp_path.glob("**/node.pid"):
            pid = read_pid(pid_file)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    output = " ".join(result.stdout.split())  # the console wraps long lines
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the oracle flagged m2" in output and "before any failure" in output, output
    verified = re.search(r"(\d+) of (\d+) final predictions reproduced", output)
    assert verified is not None, output
    reproduced, final = int(verified[1]), int(verified[2])
    assert final > 0 and reproduced == final
