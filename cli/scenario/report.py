"""The comparison's outputs: a JSON file, matplotlib PNGs and an HTML page that reads them."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from oracle.telemetry.reading import FLAG_NAMES

STRATEGY_COLOURS = {"reactive": "#c0392b", "preventive": "#2980b9", "predictive": "#27ae60"}


def verdict(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The two claims the comparison tests, each said as it came out."""
    business = {name: run["business"] for name, run in runs.items()}
    lines = []
    if {"predictive", "reactive"} <= set(business):
        p, r = business["predictive"]["failures"], business["reactive"]["failures"]
        holds = "holds" if p < r else "does NOT hold"
        lines.append(f"Fewer failures than reactive: {holds} (predictive {p}, reactive {r}).")
    if {"predictive", "preventive"} <= set(business):
        p, v = business["predictive"]["tool_changes"], business["preventive"]["tool_changes"]
        holds = "holds" if p < v else "does NOT hold"
        lines.append(
            f"Fewer tool changes than preventive: {holds} (predictive {p}, preventive {v})."
        )
    if "predictive" in business and len(business) > 1:
        costs = {name: b["cost_eur"]["total"] for name, b in business.items()}
        others = {name: cost for name, cost in costs.items() if name != "predictive"}
        holds = "holds" if costs["predictive"] < min(others.values()) else "does NOT hold"
        each = ", ".join(f"{name} {cost:,}" for name, cost in costs.items())
        lines.append(f"The lowest cost: {holds} (EUR: {each}).")
    return lines


def summary_rows(runs: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(figure, value per strategy) for the report's table and the CLI's."""

    def each(pick: Any) -> list[str]:
        return [str(pick(run["business"], run["chain"])) for run in runs.values()]

    rows: list[tuple[str, list[str]]] = [
        ("machine failures", each(lambda b, c: b["failures"])),
    ]
    rows.extend(
        (f"  {mode.upper()}", each(lambda b, c, m=mode: b["failure_modes"][m]))
        for mode in FLAG_NAMES
    )
    rows += [
        ("tool changes (planned)", each(lambda b, c: b["tool_changes"])),
        ("oracle flags", each(lambda b, c: b["oracle_flags"])),
        ("downtime (machine-hours)", each(lambda b, c: b["downtime_h"])),
        ("  repairs", each(lambda b, c: b["repair_downtime_h"])),
        ("  maintenance", each(lambda b, c: b["maintenance_downtime_h"])),
        ("OEE", each(lambda b, c: f"{b['oee']:.3f}")),
        ("  availability", each(lambda b, c: f"{b['availability']:.3f}")),
        ("  performance", each(lambda b, c: f"{b['performance']:.3f}")),
        ("  quality", each(lambda b, c: f"{b['quality']:.3f}")),
        ("orders placed", each(lambda b, c: b["orders"]["placed"])),
        ("  finished on time", each(lambda b, c: b["orders"]["on_time"])),
        ("  finished late", each(lambda b, c: b["orders"]["late"])),
        ("  open, overdue", each(lambda b, c: b["orders"]["open_overdue"])),
        ("cost (EUR)", each(lambda b, c: f"{b['cost_eur']['total']:,}")),
        ("blocks", each(lambda b, c: c["blocks"])),
        ("transactions", each(lambda b, c: c["transactions"])),
        ("view changes", each(lambda b, c: c["view_changes"])),
        ("wall time (s)", each(lambda b, c: c["seconds"])),
    ]
    return rows


def write_plots(runs: dict[str, dict[str, Any]], out: Path) -> list[str]:
    import matplotlib  # noqa: PLC0415 (heavy; only when a report is written)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(runs)
    colours = [STRATEGY_COLOURS.get(n, "#7f8c8d") for n in names]
    files = []

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, colour in zip(names, colours, strict=True):
        failures = runs[name]["timeline"]["failures"]
        hours = [0.0] + [f["t_min"] / 60 for f in failures]
        axes.step(hours, range(len(hours)), where="post", color=colour, label=name)
    axes.set_xlabel("simulated hours")
    axes.set_ylabel("machine failures (cumulative)")
    axes.set_title("Failures over the run")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "failures.png", dpi=100)
    plt.close(figure)
    files.append("failures.png")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / len(names)
    modes = [m.upper() for m in FLAG_NAMES]
    for offset, (name, colour) in enumerate(zip(names, colours, strict=True)):
        counts = [runs[name]["business"]["failure_modes"][m.lower()] for m in modes]
        left.bar(
            [i + offset * width for i in range(len(modes))], counts, width, color=colour, label=name
        )
    left.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(modes))], modes)
    left.set_ylabel("failures")
    left.set_title("Failures by mode")
    left.legend()
    parts = ["availability", "performance", "quality", "oee"]
    for offset, (name, colour) in enumerate(zip(names, colours, strict=True)):
        values = [runs[name]["business"][p] for p in parts]
        right.bar(
            [i + offset * width for i in range(len(parts))], values, width, color=colour, label=name
        )
    right.set_xticks(
        [i + width * (len(names) - 1) / 2 for i in range(len(parts))],
        ["availability", "performance", "quality", "OEE"],
    )
    right.set_ylim(0, 1)
    right.set_title("Overall equipment effectiveness")
    figure.tight_layout()
    figure.savefig(out / "modes_oee.png", dpi=100)
    plt.close(figure)
    files.append("modes_oee.png")

    figure, axes = plt.subplots(figsize=(8, 4.5))
    kinds = ["repairs", "tool_changes", "downtime", "scrap", "late_orders"]
    bottoms = [0.0] * len(names)
    for kind in kinds:
        values = [runs[n]["business"]["cost_eur"][kind] / 1000 for n in names]
        axes.bar(names, values, bottom=bottoms, label=kind.replace("_", " "))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    axes.set_ylabel("thousand EUR")
    axes.set_title("Cost by kind (see the cost model)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "cost.png", dpi=100)
    plt.close(figure)
    files.append("cost.png")
    return files


def write_report(result: dict[str, Any], out: Path) -> Path:
    """Write scenario.json, the PNGs and report.html into `out`; returns the HTML's path."""
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = result["runs"]
    (out / "scenario.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    images = write_plots(runs, out)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in runs)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in values)
        + "</tr>"
        for label, values in summary_rows(runs)
    )
    config = next(iter(runs.values()))["config"]
    costs = config["costs"]
    cost_items = "".join(
        f"<li>{html.escape(k.replace('_', ' '))}: {v:,}</li>" for k, v in costs.items()
    )
    settings = ", ".join(f"{k} {v}" for k, v in config.items() if k not in ("costs", "strategy"))
    model = result.get("model")
    model_text = (
        ""
        if model is None
        else (
            f"<p>Fault model: {html.escape(model['name'])} {html.escape(model['sha256'][:16])}, "
            f"predicting {html.escape('+'.join(model['failure_modes']).upper())} failures within "
            f"{model['horizon']} operations, threshold {model['threshold_bp']} bp, validation F1 "
            f"{model['validation']['f1']:.3f} on {model['training_records']:,} simulated "
            "records.</p>"
        )
    )
    verdicts = "".join(f"<li>{html.escape(v)}</li>" for v in verdict(runs))
    pictures = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>millchain scenario comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .25em .8em; border-bottom: 1px solid #ddd;
text-align: right; }} td:first-child {{ text-align: left; }}
</style></head><body>
<h1>Does predictive maintenance on a blockchain pay off?</h1>
<p>Seed {config["seed"]}; {html.escape(settings)}.</p>
<h2>Verdict</h2><ul>{verdicts}</ul>
<h2>Figures</h2><table><tr><th></th>{head}</tr>{body}</table>
{model_text}
<h2>Cost model (EUR)</h2><ul>{cost_items}</ul>
<p>Repairs are charged per failure, tool changes per planned change (preventive or on an oracle
flag), downtime per machine-hour out of service, scrap per part being made when a machine
failed, and a penalty per order finished after its due time.</p>
{pictures}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
