"""`--help` says what every option is and the ranges the commands enforce, and says how options
combine as the code combines them; input the help does not allow is refused naming what is."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.main import main
from consensus.sim.faults import FaultConfig


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _option(path: list[str], name: str) -> click.Option:
    command: click.Command = main
    context = click.Context(main)
    for part in path:
        assert isinstance(command, click.Group)
        found = command.get_command(context, part)
        assert found is not None, part
        command = found
    for param in command.params:
        if isinstance(param, click.Option) and name in param.opts:
            return param
    raise AssertionError(f"{' '.join(path)} has no option {name}")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        (["cluster", "restart"], "--timeout"),
        (["cluster", "up"], "--timeout"),
        (["machine", "flag"], "--probability-bp"),
        (["sim"], "-n"),
        (["sim"], "--seeds"),
        (["sim"], "--first-seed"),
        (["sim"], "--json"),
        (["sim"], "--byzantine"),
        (["init"], "--chain-id"),
        (["oracle", "verify"], "--from"),
        (["scenario", "run"], "--seed"),
    ],
)
def test_every_option_named_has_help(path: list[str], name: str) -> None:
    assert _option(path, name).help


@pytest.mark.parametrize("command", ["run", "compare"])
def test_scenario_help_shows_the_ranges_it_enforces(command: str) -> None:
    result = _invoke("scenario", command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for shown in (
        "1<=x<=336",
        "3<=x<=120",
        "0<x<=2",
        "x>=4",
        "from 2 (one per kind of cell) to 64",
    ):
        assert shown in text, shown


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--hours", "337"], "'--hours'"),
        (["--step-min", "2"], "'--step-min'"),
        (["--load", "0"], "'--load'"),
        (["--load", "nan"], "not a finite number"),
        (["--nodes", "3"], "'--nodes'"),
    ],
)
def test_scenario_refuses_settings_out_of_range_while_parsing(
    args: list[str], fragment: str
) -> None:
    result = _invoke("scenario", "run", "--strategy", "reactive", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output


def test_sim_byzantine_help_says_what_the_code_does() -> None:
    text = " ".join((_option(["sim"], "--byzantine").help or "").split())
    assert "Default: 1 if --faults is all or lists byzantine, else 0" in text
    assert FaultConfig.parse("all").byzantine == 1
    assert FaultConfig.parse("crash,byzantine").byzantine == 1
    assert FaultConfig.parse("crash").byzantine == 0
    assert "--faults byzantine --byzantine 0 has none" in text
    assert FaultConfig.parse("byzantine", byzantine=0).byzantine == 0
    assert "--faults crash --byzantine 1 adds one" in text
    assert FaultConfig.parse("crash", byzantine=1).byzantine == 1


def test_init_dir_help_says_what_init_does_with_it() -> None:
    text = " ".join((_option(["init"], "--dir").help or "").split())
    assert "made by `millchain init`" not in text
    assert text.startswith("Directory to create the cluster in")


def test_order_place_help_and_error_name_the_same_form(tmp_path: Path) -> None:
    assert "GROUP=CHOICE" in (_option(["order", "place"], "--option").help or "")
    result = _invoke(
        "order", "place", "chair", "--variant", "oak", "--option", "finish", "--dir", str(tmp_path)
    )
    assert result.exit_code == 2, result.output
    assert "'finish': expected GROUP=CHOICE" in result.output


def test_order_list_refuses_an_unknown_state_naming_the_valid_ones(tmp_path: Path) -> None:
    result = _invoke("order", "list", "--state", "bogus", "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "'bogus' is not one of 'created', 'accepted'" in result.output


@pytest.mark.parametrize("value", ["-1", "10001"])
def test_machine_flag_refuses_a_probability_out_of_range(tmp_path: Path, value: str) -> None:
    result = _invoke("machine", "flag", "m1", "--probability-bp", value, "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "'--probability-bp'" in result.output
