"""Bad command-line input is refused with a clear error before anything is sent or run: numeric
options out of range, malformed key=value arguments, files that are not JSON. None of these
commands finds a cluster in the empty folder they are given, so getting past parsing would
fail differently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, (ValueError, KeyError, TypeError)), result.exception
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--duration", "-1"], "'--duration'"),
        (["--duration", "0"], "'--duration'"),
        (["--duration", "nan"], "not a finite number"),
        (["--rate", "nan"], "not a finite number"),
        (["--rate", "-5"], "'--rate'"),
        (["--nodes", "3"], "'--nodes'"),
    ],
)
def test_bench_refuses_numbers_out_of_range(tmp_path: Path, args: list[str], fragment: str) -> None:
    _refused(_invoke("bench", *args, "--dir", str(tmp_path)), fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--stress", "typo=1"], "'typo' is not one of the machines simulated (m1)"),
        (["--stress", "m1"], "expected MACHINE=LEVEL"),
        (["--stress", "m1=4"], "expected a level from 0 to 3"),
        (["--stress", "m1=nan"], "expected a level from 0 to 3"),
        (["--stress", "m1=high"], "expected a level from 0 to 3"),
        (["--stress", "m1=1", "--stress", "m1=2"], "'m1' given twice"),
        (["--operations", "-1"], "'--operations'"),
        (["--batch", "0"], "'--batch'"),
        (["--batch", "201"], "'--batch'"),
        (["--pace-ms", "-1"], "'--pace-ms'"),
    ],
)
def test_machine_simulate_refuses_bad_options(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    _refused(_invoke("machine", "simulate", "m1", *args, "--dir", str(tmp_path)), fragment)


def test_machine_simulate_refuses_a_machine_named_twice(tmp_path: Path) -> None:
    _refused(_invoke("machine", "simulate", "m1", "m1", "--dir", str(tmp_path)), "m1 given twice")


@pytest.mark.parametrize(
    "command",
    [["tx", "inventory", "receive", "--as", "supplier"], ["inventory", "receive", "a", "1"]],
)
@pytest.mark.parametrize("timeout", ["-1", "0", "nan"])
def test_submitting_commands_refuse_a_timeout_that_is_not_positive(
    tmp_path: Path, command: list[str], timeout: str
) -> None:
    _refused(_invoke(*command, "--timeout", timeout, "--dir", str(tmp_path)), "'--timeout'")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        (["seq=²"], "seq='²': expected an integer"),
        (["seq=--1"], "seq='--1': expected an integer"),
        (["seq=1.5"], "seq='1.5': expected an integer"),
        (["sq=1"], "unknown field 'sq'"),
        (["seq=1", "seq=2"], "'seq' given twice"),
        (["seq"], "expected key=value"),
    ],
)
def test_machine_report_refuses_malformed_fields(
    tmp_path: Path, fields: list[str], fragment: str
) -> None:
    result = _invoke("machine", "report", "m1", *fields, "--dir", str(tmp_path))
    _refused(result, "FIELDS", fragment)


def test_order_options_are_texts_and_a_group_given_twice_is_refused(tmp_path: Path) -> None:
    base = ["order", "place", "bracket", "--variant", "small", "--dir", str(tmp_path)]
    # An option value that looks like a malformed integer is a choice like any other: it gets
    # as far as looking for the cluster.
    result = _invoke(*base, "--option", "finish=--1")
    assert result.exit_code == 1 and "not a cluster directory" in result.output, result.output
    _refused(_invoke(*base, "--option", "a=1", "--option", "a=2"), "--option", "'a' given twice")


@pytest.mark.parametrize("content", [b"not json{", b"\xff\xfe"])
def test_catalog_publish_refuses_a_file_that_is_not_json(tmp_path: Path, content: bytes) -> None:
    document = tmp_path / "bad.json"
    document.write_bytes(content)
    result = _invoke("catalog", "publish", str(document), "--dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "bad.json: not a JSON document" in result.output


def test_catalog_publish_checks_every_product_before_it_sends_any(tmp_path: Path) -> None:
    # One transaction a product: a bad one after a good one left the good one published.
    catalog = json.loads((Path(__file__).parents[2] / "configs" / "catalog.json").read_text())
    good = catalog["products"][0]
    small = {**good["variants"]["small"], "bom": {"steel-sheet": 0}}
    bad = {**good, "product": "widget", "variants": {"small": small}}
    document = tmp_path / "catalog.json"
    document.write_text(json.dumps({"products": [good, bad]}), encoding="utf-8")
    result = _invoke("catalog", "publish", str(document), "--dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "product 'widget': catalog.publish" in result.output
    assert "must be at least 1" in result.output
    assert "nothing was published" in result.output  # refused before it looked for a cluster


@pytest.mark.parametrize("segment", [".", "..", ""])
def test_query_refuses_a_key_a_url_cannot_carry(tmp_path: Path, segment: str) -> None:
    result = _invoke("query", "machines", segment, "--dir", str(tmp_path))
    _refused(result, "PATH", f"{segment!r} cannot be sent as a key")


def test_oracle_verify_refuses_an_empty_range(tmp_path: Path) -> None:
    result = _invoke("oracle", "verify", "--from", "5", "--to", "2", "--dir", str(tmp_path))
    _refused(result, "--to 2 is below --from 5")


@pytest.mark.parametrize(
    "option",
    ["--cost-failure", "--cost-tool-change", "--cost-downtime-hour", "--cost-scrap", "--cost-late"],
)
def test_scenario_refuses_a_negative_cost(option: str) -> None:
    # --machines 1 is refused too, later: a cost that got past parsing would show that error.
    result = _invoke("scenario", "run", "--strategy", "reactive", "--machines", "1", option, "-1")
    _refused(result, f"'{option}'")
