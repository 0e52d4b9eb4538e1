"""`millchain scenario run` and `millchain scenario compare`."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import FiniteFloatRange, OutputFile, console, guarded
from cli.common import table as print_table
from cli.scenario.chain import ScenarioError
from cli.scenario.config import HOURS_MAX, MACHINES_MAX, CostModel, ScenarioConfig, Strategy
from cli.scenario.report import summary_rows, verdict, write_report
from cli.scenario.runner import run_scenario, train_model
from node.client import ClientError

DEFAULT_COSTS = CostModel()
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _cost_option(name: str, default: int, per: str) -> Decorator:
    """An option of the cost model: whole EUR, at least 0, per `per`."""
    return click.option(
        name, type=click.IntRange(min=0), default=default, show_default=True, help=f"EUR per {per}."
    )


_OPTIONS: list[Decorator] = [
    click.option(
        "--machines",
        # Checked by ScenarioConfig, whose error says why at least 2.
        type=int,
        default=6,
        show_default=True,
        help=f"Machines, from 2 (one per kind of cell) to {MACHINES_MAX}.",
    ),
    click.option(
        "--hours",
        type=click.IntRange(1, HOURS_MAX),
        default=24,
        show_default=True,
        help="Simulated hours.",
    ),
    click.option(
        "--seed",
        type=int,
        default=1,
        show_default=True,
        help="Seed of the plant; the same seed gives the same business figures.",
    ),
    click.option(
        "--nodes",
        type=click.IntRange(min=4),
        default=4,
        show_default=True,
        help="Validators (n = 3f+1).",
    ),
    click.option(
        "--step-min",
        type=click.IntRange(3, 120),
        default=15,
        show_default=True,
        help="Simulated minutes per step (readings are committed once a step).",
    ),
    click.option(
        "--response-min",
        type=click.IntRange(min=0),
        default=30,
        show_default=True,
        help="Minutes from a failure or an oracle work order to a maintainer.",
    ),
    click.option(
        "--repair-min",
        type=click.IntRange(min=1),
        default=120,
        show_default=True,
        help="Minutes an unplanned repair takes.",
    ),
    click.option(
        "--tool-change-min",
        type=click.IntRange(min=1),
        default=30,
        show_default=True,
        help="Minutes a planned tool change takes.",
    ),
    click.option(
        "--tool-change-at",
        type=click.IntRange(min=1),
        default=150,
        show_default=True,
        help="Preventive: change the tool at this much wear (minutes).",
    ),
    click.option(
        "--lead-time",
        type=click.IntRange(min=1),
        default=8,
        show_default=True,
        help="Hours from an order's placement to its due time.",
    ),
    click.option(
        "--load",
        type=FiniteFloatRange(0, 2, min_open=True),
        default=0.8,
        show_default=True,
        help="Offered work as a share of the fleet's capacity.",
    ),
    click.option(
        "--horizon",
        type=click.IntRange(1, 100),
        default=10,
        show_default=True,
        help="Predictive: the model predicts failure within this many operations.",
    ),
    _cost_option("--cost-failure", DEFAULT_COSTS.failure_repair_eur, "unplanned repair"),
    _cost_option("--cost-tool-change", DEFAULT_COSTS.tool_change_eur, "planned tool change"),
    _cost_option(
        "--cost-downtime-hour", DEFAULT_COSTS.downtime_eur_per_hour, "machine-hour out of service"
    ),
    _cost_option("--cost-scrap", DEFAULT_COSTS.scrap_eur, "scrapped part"),
    _cost_option("--cost-late", DEFAULT_COSTS.late_order_eur, "order finished late"),
]


def scenario_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def _config(strategy: Strategy, options: dict[str, Any]) -> ScenarioConfig:
    try:
        return ScenarioConfig(
            strategy=strategy,
            seed=options["seed"],
            machines=options["machines"],
            hours=options["hours"],
            nodes=options["nodes"],
            step_min=options["step_min"],
            response_min=options["response_min"],
            repair_min=options["repair_min"],
            tool_change_min=options["tool_change_min"],
            tool_change_at_min=options["tool_change_at"],
            lead_time_h=options["lead_time"],
            load=options["load"],
            horizon=options["horizon"],
            costs=CostModel(
                failure_repair_eur=options["cost_failure"],
                tool_change_eur=options["cost_tool_change"],
                downtime_eur_per_hour=options["cost_downtime_hour"],
                scrap_eur=options["cost_scrap"],
                late_order_eur=options["cost_late"],
            ),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _run_all(strategies: list[Strategy], options: dict[str, Any]) -> dict[str, Any]:
    configs = [_config(s, options) for s in strategies]
    result: dict[str, Any] = {"runs": {}, "model": None}
    with tempfile.TemporaryDirectory(prefix="millchain-scenario-model-") as folder:
        model_file = Path(folder) / "fault-model.skops"
        predictive = [c for c in configs if c.strategy is Strategy.PREDICTIVE]
        if predictive:
            with console.status("training the fault model for the predictive strategy..."):
                result["model"] = train_model(predictive[0], model_file)
        for config in configs:
            with Progress(
                TextColumn(f"{config.strategy:>10}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("run", total=config.steps)

                def advance(done: int, total: int, task: Any = task) -> None:
                    bar.update(task, completed=done, total=total)

                try:
                    run = run_scenario(config, model_file=model_file, progress=advance)
                except (ScenarioError, ClientError) as exc:
                    raise click.ClickException(f"{config.strategy} run stopped: {exc}") from exc
            result["runs"][str(config.strategy)] = run
            business = run["business"]
            console.print(
                f"{config.strategy:>10}: {business['failures']} failures, "
                f"{business['tool_changes']} tool changes, OEE {business['oee']:.3f}, "
                f"{run['chain']['blocks']} blocks in {run['chain']['seconds']} s"
            )
    return result


def _print(result: dict[str, Any]) -> None:
    runs = result["runs"]
    print_table(None, ["", *runs], [[label, *values] for label, values in summary_rows(runs)])
    for line in verdict(runs):
        console.print(line)


@click.group(name="scenario")
def scenario() -> None:
    """The factory scenario: does predictive maintenance on a blockchain pay off?

    A live cluster runs a plant in accelerated simulated time: customers order custom
    products, suppliers deliver, simulated machines work the orders and report readings,
    maintainers answer work orders, and production moves off machines that go down or are
    flagged at risk. The same seed gives the same business figures.
    """


@scenario.command(name="run")
@click.option(
    "--strategy",
    type=click.Choice([str(s) for s in Strategy]),
    required=True,
    help="reactive: repair after failures; preventive: change tools at a fixed wear; "
    "predictive: act on the oracle's final predictions.",
)
@scenario_options
@click.option(
    "--json",
    "json_path",
    type=OutputFile(),
    help="Also write the figures to this JSON file.",
)
@guarded
def run_command(strategy: str, json_path: Path | None, **options: Any) -> None:
    """Run one maintenance strategy on a fresh local cluster and print its figures."""
    result = _run_all([Strategy(strategy)], options)
    _print(result)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {json_path}")


@scenario.command(name="compare")
@scenario_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("scenario-report"),
    show_default=True,
    help="Folder for report.html, scenario.json and the plots.",
)
@guarded
def compare_command(out_dir: Path, **options: Any) -> None:
    """Run all three strategies with the same seed; write an HTML report, plots and JSON."""
    result = _run_all(list(Strategy), options)
    _print(result)
    page = write_report(result, out_dir)
    console.print(f"wrote {page} and {out_dir / 'scenario.json'}")
