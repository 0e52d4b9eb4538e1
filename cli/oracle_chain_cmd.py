"""`millchain oracle register` and `millchain oracle verify`: the fault model on the chain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cli.client_cmd import reachable_client
from cli.common import console, dir_option, guarded, json_option, layout_of, print_json, run
from cli.common import table as print_table
from cli.layout import ClusterDir
from ledger.tx import Transaction
from node.client import ClientError, NodeClient, wait_committed_anywhere
from node.oracle_runner import model_path, to_reading
from oracle.model.artifact import load_model
from oracle.model.fault_model import FaultModel


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@click.command(name="register")
@click.argument("model_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@dir_option
@json_option
@guarded
def register(model_file: Path, directory: Path, as_json: bool) -> None:
    """Register MODEL_FILE on-chain (by its sha256) and give it to the cluster's nodes.

    The artifact is loaded once here (it must be a valid fault model) and a node must answer;
    then it is copied to DIR/models under its hash, where every validator loads it only after
    checking that hash, and the admin registers hash, name, features, threshold and horizon
    with the oracle contract. A bad artifact or a cluster that does not answer changes nothing,
    and a registration that is refused or fails removes the copy again.
    """
    layout = layout_of(directory)
    result, model = run(register_model_file(layout, model_file))
    digest = file_sha256(model_file)
    meta = model.metadata
    summary = {
        "sha256": digest,
        "name": meta.name,
        "threshold_bp": meta.threshold_bp,
        "horizon": meta.horizon,
        "height": result["height"],
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"registered {meta.name} {digest[:16]} (threshold {meta.threshold_bp} bp, horizon "
            f"{meta.horizon}) at height {result['height']}"
        )


# Seconds `oracle register` waits for its registration to commit.
REGISTER_COMMIT_TIMEOUT_S = 30.0


async def register_model_file(
    layout: ClusterDir, model_file: Path
) -> tuple[dict[str, Any], FaultModel]:
    """Check the artifact, the admin's key and that a node answers; then put the artifact in
    DIR/models under its hash and register it as the admin. Bad input or a cluster that does not
    answer changes nothing, and a registration that is refused or fails takes the copy away
    again. One that may still commit (its node stopped answering mid-request, or its commit was
    not seen in time) keeps it: the validators load the model from there once it commits."""
    digest = file_sha256(model_file)
    model = load_model(model_file, digest)
    admin = layout.identity_keys("admin")
    chain_id = layout.genesis().chain_id
    client = await reachable_client(layout, None)  # ClientError if none answers
    try:
        tx = Transaction.create(
            admin,
            chain_id=chain_id,
            nonce=await client.next_nonce(admin.public_key),
            contract="oracle",
            method="register_model",
            args=_registration(model, digest),
        )
        placed = _place_model(layout.models_dir, model_file, digest)
        try:
            await client.submit(tx.wire)
        except ClientError as exc:
            if exc.status is None:  # no answer: the node may have taken it before it went
                raise ClientError(f"{exc}; {_kept(layout, digest)}") from exc
            placed.take_back()  # the node answered: it refused the transaction
            raise
    finally:
        await client.__aexit__(None, None, None)
    urls = [layout.config(name).url for name in layout.node_names()]
    try:
        result = await wait_committed_anywhere(urls, tx.hash.hex(), REGISTER_COMMIT_TIMEOUT_S)
    except ClientError as exc:
        raise ClientError(f"{exc}; {_kept(layout, digest)}") from exc
    error = None if result["receipt"]["ok"] else result["receipt"]["error"]
    if error is not None and result.get("settled", True) is False:
        # A failure that left the nonce unused: a later block may still run it.
        raise click.ClickException(f"registration not run yet ({error}); {_kept(layout, digest)}")
    if error is not None:
        placed.take_back()
        raise click.ClickException(f"registration failed: {error}")
    return result, model


def _registration(model: FaultModel, digest: str) -> dict[str, Any]:
    """The oracle contract's register_model arguments for `model`, whose artifact hashes to
    `digest` (hex)."""
    meta = model.metadata
    return {
        "model_hash": bytes.fromhex(digest),
        "name": meta.name,
        "features": list(meta.features),
        "threshold_bp": meta.threshold_bp,
        "horizon": meta.horizon,
    }


def _kept(layout: ClusterDir, digest: str) -> str:
    """Why the artifact stays in DIR/models after an error that leaves the registration open."""
    where = model_path(layout.models_dir, digest)
    return (
        f"the registration may still commit, so {where} is kept (`millchain query oracle model "
        f"--dir {layout.root}` shows the registered model)"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacedModel:
    """What `_place_model` made: the artifact's file and the models folder, each None if it was
    there already."""

    file: Path | None
    folder: Path | None

    def take_back(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self.folder is not None:
            with contextlib.suppress(OSError):  # not empty: someone else put a file there
                self.folder.rmdir()


def _place_model(models_dir: Path, model_file: Path, digest: str) -> PlacedModel:
    """Copy the artifact to DIR/models under its hash, through a temporary file so that a node
    never reads half of one. A file there already with the right bytes is left alone; one with
    other bytes (which no node would load, as they check the hash) is replaced."""
    target = model_path(models_dir, digest)
    if target.exists() and file_sha256(target) == digest:
        return PlacedModel(file=None, folder=None)
    folder = None if models_dir.is_dir() else models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    placed = PlacedModel(file=None if target.exists() else target, folder=folder)
    partial = target.with_name(f".{target.name}.partial")
    try:
        shutil.copyfile(model_file, partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        placed.take_back()
        raise
    return placed


async def wait_model_loaded(layout: ClusterDir, model_hash: str, timeout_s: float) -> None:
    """Until every validator's oracle has loaded model `model_hash` (hex), `timeout_s` at most.

    A validator loads a newly registered model in the background, and the first load imports
    scikit-learn (seconds): readings committed before then are predicted only afterwards."""
    deadline = time.monotonic() + timeout_s
    for name in layout.node_names():
        async with NodeClient(layout.config(name).url) as client:
            while True:
                oracle = (await client.status()).get("oracle")
                if oracle is None or oracle.get("model") == model_hash:
                    break  # an observer runs no oracle
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"{name} has not loaded model {model_hash[:16]} within {timeout_s:g} s "
                        f"(its oracle: {oracle})"
                    )
                await asyncio.sleep(0.1)


async def _readings(
    client: NodeClient, start: int, end: int
) -> list[tuple[int, str, dict[str, Any]]]:
    found: list[tuple[int, str, dict[str, Any]]] = []
    for height in range(start, end + 1):
        block = await client.block(height)
        for tx in block["txs"]:
            receipt = tx.get("receipt") or {}
            if tx["contract"] == "machines" and tx["method"] == "report" and receipt.get("ok"):
                found.extend(
                    (height, str(tx["args"]["machine"]), dict(r)) for r in tx["args"]["readings"]
                )
    return found


async def verify_range(layout: ClusterDir, start: int, end: int | None) -> dict[str, Any]:
    """Recompute every final prediction on readings committed in [start, end]."""
    client = await reachable_client(layout, None)
    models: dict[str, FaultModel] = {}
    checked, undecided, lag_max = 0, 0, 0
    mismatches: list[dict[str, Any]] = []
    try:
        head = int((await client.status())["height"])
        if start > max(head, 1):  # --from 1 on a chain without blocks is no mistake
            raise click.BadParameter(
                f"--from {start} is above the head ({head}): no block there yet",
                param_hint="--from",
            )
        if await client.query("oracle", ["model"]) is None:
            raise click.ClickException(
                "no fault model is registered on the chain: nothing to verify (register one "
                "with `millchain oracle register MODEL_FILE`)"
            )
        last = head if end is None else min(end, head)
        for height, machine, fields in await _readings(client, start, last):
            try:
                prediction = await client.query(
                    "oracle", ["prediction", machine, str(fields["seq"])]
                )
            except ClientError:
                undecided += 1
                continue
            if not prediction["final"]:
                undecided += 1
                continue
            model_hash = str(prediction["model"])
            if model_hash not in models:
                models[model_hash] = load_model(
                    model_path(layout.models_dir, model_hash), model_hash
                )
            value = models[model_hash].predict_bp([to_reading(machine, fields)])[0]
            checked += 1
            lag_max = max(lag_max, int(prediction["final_height"]) - height)
            if value != prediction["value_bp"]:
                mismatches.append(
                    {
                        "height": height,
                        "machine": machine,
                        "seq": fields["seq"],
                        "chain_bp": prediction["value_bp"],
                        "recomputed_bp": value,
                    }
                )
    finally:
        await client.__aexit__(None, None, None)
    return {
        "from": start,
        "to": last,
        "final_checked": checked,
        "reproduced": checked - len(mismatches),
        "not_final": undecided,
        "final_lag_blocks_max": lag_max,
        "mismatches": mismatches,
    }


@click.command(name="verify")
@dir_option
@click.option(
    "--from",
    "start",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="First height (at most the head).",
)
@click.option("--to", "end", default=None, type=click.IntRange(min=1), help="Default: the head.")
@json_option
@guarded
def verify(directory: Path, start: int, end: int | None, as_json: bool) -> None:
    """Re-run the registered model on readings committed in a range of heights and report every
    final prediction it does not reproduce. Exit status 1 if there is one, if no model is
    registered, or if no reading in the range has a final prediction (nothing was verified)."""
    if end is not None and end < start:
        raise click.BadParameter(f"--to {end} is below --from {start}", param_hint="--to")
    report = asyncio.run(verify_range(layout_of(directory), start, end))
    if report["final_checked"] == 0:
        raise click.ClickException(_nothing_verified(report))
    if as_json:
        print_json(report)
    else:
        console.print(
            f"heights {report['from']}..{report['to']}: {report['reproduced']} of "
            f"{report['final_checked']} final predictions reproduced "
            f"({report['not_final']} readings without a final prediction); every final "
            f"prediction came at most {report['final_lag_blocks_max']} blocks after its reading"
        )
        if report["mismatches"]:
            print_table(
                "not reproduced",
                ["height", "machine", "seq", "chain bp", "recomputed"],
                [
                    [m["height"], m["machine"], m["seq"], m["chain_bp"], m["recomputed_bp"]]
                    for m in report["mismatches"]
                ],
            )
    if report["mismatches"]:
        raise SystemExit(1)


def _nothing_verified(report: dict[str, Any]) -> str:
    """Why a range with no final prediction in it verified nothing."""
    heights = f"heights {report['from']}..{report['to']}"
    if report["not_final"] == 0:
        return f"no machine reading is committed in {heights}: nothing to verify"
    return (
        f"none of the {report['not_final']} machine readings committed in {heights} has a final "
        "prediction yet: nothing verified (a prediction is final once a quorum of the "
        "validators' oracles agree on it; try again later)"
    )
