"""`kill -USR1` makes a millchain process print where its threads are, and goes on running:
how to see where a command or node that seems stuck is waiting."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.layout import init_cluster
from cli.main import main
from tests.cli.test_node_run_pid_file import _answers, foreground_node


@pytest.mark.slow
def test_sigusr1_prints_every_thread_of_a_node_and_the_node_runs_on(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "cluster", nodes=4)
    with foreground_node(layout, "node0") as process:
        os.kill(process.pid, signal.SIGUSR1)
        assert _answers(layout, "node0")  # still serving after the dump
        assert process.poll() is None
        process.terminate()
        output, _ = process.communicate(timeout=60)
    # The main thread's stack names the event loop the node waits in; the checkpointer's
    # thread is listed too.
    assert "Current thread" in output or "Thread 0x" in output, output
    assert output.count("Thread 0x") + output.count("Current thread") >= 2, output
    assert "node/main.py" in output or "node/api.py" in output, output


def test_a_command_run_in_process_with_its_output_captured_runs_without_the_dump(
    tmp_path: Path,
) -> None:
    # Click's runner gives the command a stderr with no file behind it: there is nowhere to
    # write a dump, and the command must run as ever.
    result = CliRunner().invoke(main, ["init", "--dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "genesis.json").exists()
