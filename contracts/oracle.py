"""The oracle contract: a registered fault model, validators' signed reports, final predictions.

The admin registers a model (its artifact's sha256, name, features, decision threshold and
horizon). Each validator's oracle identity evaluates the model on committed sensor readings and
reports, per reading, the probability of failure in basis points. A prediction becomes final when
a quorum of distinct reporters (the genesis parameter `oracle_quorum`, by default and at least
2f+1) has reported on the same reading with the registered model; its value is the median of
those reports (the lower median for an even count), which with at most f faulty reporters lies
between two honest reports: f faulty oracles can neither raise a flag nor, with a quorum of at
most n - f (2f+1 is, at n = 3f+1), hold one back by staying silent. (With
f+1 reports, the lower median of two is the smaller: one oracle reporting 0 first vetoed every
flag.) A final prediction at or
above the threshold flags the machine at risk (its queued orders move elsewhere) and opens a
work order, unless the machine is already out of normal service. Reports that arrive after the
decision, or that differ from the median by more than `tolerance_bp`, are kept and listed as
late or outlying, so disagreement among validators is visible.

Events: `final` on `prediction:<machine>/<seq>` and `prediction` on `machine:<machine>` once a
prediction is decided. A single report is no event of its own: the prediction record keeps every
report, and every validator reports on every reading, so an event apiece would cost about as
much to execute as the reports themselves.

    oracle/params                                 {"quorum", "tolerance_bp"} from the genesis
    oracle/model                                  the registered model
    oracle/prediction/<machine>/<seq, 12 digits>  reports and, once decided, the final value
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.contract import Call, Contract, method
from contracts.errors import ConflictError, NotFoundError, QueryError, RejectedError, StateError
from contracts.machine_state import (
    SEQ_DIGITS,
    SEQ_MAX,
    MachineStatus,
    existing_machine,
    read_reading,
    reading_key,
)
from contracts.machines import flag_machine_at_risk
from contracts.maintenance import open_work_order
from contracts.schema import NAME_PATTERN, Bytes, Int, ListOf, Record, Str, is_decimal
from contracts.state import (
    MemoryState,
    Overlay,
    StateReader,
    Writes,
    decode_map,
    read_map,
    write_map,
)
from ledger.certificate import max_faulty
from ledger.genesis import Genesis, Role

CONTRACT = "oracle"
PARAMS_KEY = b"oracle/params"
MODEL_KEY = b"oracle/model"
PREDICTION_PREFIX = b"oracle/prediction/"
BASIS_POINTS = 10_000
TOLERANCE_BP_DEFAULT = 500
# Reports in one transaction. Each emits 2 events when it decides its prediction; a machine
# found at risk adds its flag, its work order and an event per queued order moved (up to
# QUEUE_MAX). So a transaction can pass EVENTS_MAX when it flags machines with long queues: it
# then fails whole, and the oracle runner sends its reports again in halves, down to one report
# a transaction, which always fits (see node/oracle_runner.py, `_failed`).
REPORTS_PER_TX_MAX = 100
# A predictions query answers a machine's newest predictions, this many (a machine reporting
# for years has millions; the explorer charts the last 200).
PREDICTIONS_QUERY_MAX = 200

_NAME = Str(min_len=1, max_len=64, pattern=NAME_PATTERN)
REPORT = Record(
    fields={
        "machine": _NAME,
        "seq": Int(min=0, max=SEQ_MAX),
        "probability_bp": Int(min=0, max=BASIS_POINTS),
    }
)


def prediction_key(machine: str, seq: int) -> bytes:
    return PREDICTION_PREFIX + f"{machine}/{seq:0{SEQ_DIGITS}d}".encode()


def prediction_subject(machine: str, seq: int) -> str:
    return f"prediction:{machine}/{seq}"


def median_bp(values: Sequence[int]) -> int:
    """The lower median: deterministic, and always one of the reported values."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def registered_model(state: StateReader) -> dict[str, Any] | None:
    return read_map(state, MODEL_KEY)


class OracleContract(Contract):
    """Model registration, reports by validators' oracle identities, final predictions."""

    name = CONTRACT

    def genesis_writes(self, genesis: Genesis) -> Writes:
        quorum = genesis.params.oracle_quorum or 2 * max_faulty(genesis.n) + 1
        overlay = Overlay(MemoryState())
        write_map(overlay, PARAMS_KEY, {"quorum": quorum, "tolerance_bp": TOLERANCE_BP_DEFAULT})
        return overlay.writes

    @method(
        roles=(Role.ADMIN,),
        args={
            "model_hash": Bytes(length=32),
            "name": Str(min_len=1, max_len=64),
            "features": ListOf(item=Str(min_len=1, max_len=64), min_len=1, max_len=64),
            "threshold_bp": Int(min=0, max=BASIS_POINTS),
            "horizon": Int(min=0, max=1000),
        },
    )
    def register_model(
        self,
        call: Call,
        *,
        model_hash: bytes,
        name: str,
        features: list[str],
        threshold_bp: int,
        horizon: int,
    ) -> dict[str, Any]:
        """Register the model whose reports count from now on (replacing any earlier one)."""
        record = {
            "hash": model_hash,
            "name": name,
            "features": list(features),
            "threshold_bp": threshold_bp,
            "horizon": horizon,
            "registered_height": call.block.height,
            "registered_ms": call.block.timestamp_ms,
        }
        write_map(call.state, MODEL_KEY, record)
        call.emit(
            "model_registered",
            "oracle:model",
            {
                "hash": model_hash.hex(),
                "name": name,
                "threshold_bp": threshold_bp,
                "horizon": horizon,
            },
        )
        return {"hash": model_hash.hex(), "name": name}

    @method(
        roles=(Role.ORACLE,),
        args={
            "model_hash": Bytes(length=32),
            "reports": ListOf(item=REPORT, min_len=1, max_len=REPORTS_PER_TX_MAX),
        },
    )
    def report(
        self, call: Call, *, model_hash: bytes, reports: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Report failure probabilities for committed readings with the registered model."""
        model = registered_model(call.state)
        if model is None:
            raise NotFoundError("no model is registered; the admin registers one first")
        if model["hash"] != model_hash:
            raise RejectedError(
                f"reports name model {model_hash.hex()[:16]}, the registered model is "
                f"{bytes(model['hash']).hex()[:16]}"
            )
        params = read_map(call.state, PARAMS_KEY)
        if params is None:  # genesis writes it (genesis_writes)
            raise StateError("the oracle's parameters are missing from state")
        finalized = 0
        for index, item in enumerate(reports):
            if self._record(call, model, params, index, item):
                finalized += 1
        return {"reports": len(reports), "finalized": finalized}

    def _record(
        self,
        call: Call,
        model: dict[str, Any],
        params: dict[str, Any],
        index: int,
        item: dict[str, Any],
    ) -> bool:
        machine, seq, value = item["machine"], item["seq"], item["probability_bp"]
        # Only its existence matters here: the validators evaluated the committed reading.
        if call.state.get(reading_key(machine, seq)) is None:
            raise NotFoundError(f"report {index}: machine {machine} has no committed reading {seq}")
        key = prediction_key(machine, seq)
        record = read_map(call.state, key)
        if record is not None and bytes(record["model"]) != model["hash"]:
            if record["final"]:
                raise ConflictError(
                    f"report {index}: {machine} reading {seq} was decided with model "
                    f"{bytes(record['model']).hex()[:16]}, not the registered one"
                )
            # The model was replaced before its reports made a quorum: they no longer count,
            # and one prediction is never the median of two models' reports.
            record = None
        record = record or {
            "machine": machine,
            "seq": seq,
            "model": model["hash"],
            "reports": {},
            "reporter_keys": [],
            "final": False,
            "value_bp": None,
            "final_height": None,
            "late": [],
            "outliers": [],
            "at_risk": False,
        }
        reporter = call.sender_name
        # Counted by key: an identity removed and added again under another name is the same
        # reporter, and must not count twice toward the quorum. (Records written before the
        # keys were kept have none: their reporters are counted by name, as they were.)
        record["reporter_keys"] = list(record.get("reporter_keys", []))
        if reporter in record["reports"] or call.sender in record["reporter_keys"]:
            raise ConflictError(
                f"report {index}: {reporter} already reported on {machine} reading {seq}"
            )
        record["reports"] = {**record["reports"], reporter: value}
        record["reporter_keys"] = sorted([*record["reporter_keys"], call.sender])
        decided_now = False
        if record["final"]:
            record["late"] = sorted({*record["late"], reporter})
        elif len(record["reports"]) >= int(params["quorum"]):
            decided_now = True
            record["final"] = True
            record["value_bp"] = median_bp(list(record["reports"].values()))
            record["final_height"] = call.block.height
            record["at_risk"] = record["value_bp"] >= int(model["threshold_bp"])
        if record["final"]:
            tolerance = int(params["tolerance_bp"])
            record["outliers"] = sorted(
                name
                for name, reported in record["reports"].items()
                if abs(int(reported) - int(record["value_bp"])) > tolerance
            )
        write_map(call.state, key, record)
        if decided_now:
            self._decided(call, model, record)
        return decided_now

    def _decided(self, call: Call, model: dict[str, Any], record: dict[str, Any]) -> None:
        machine, seq, value = record["machine"], record["seq"], record["value_bp"]
        data = {
            "seq": seq,
            "value_bp": value,
            "threshold_bp": model["threshold_bp"],
            "reporters": sorted(record["reports"]),
            "outliers": record["outliers"],
            "at_risk": record["at_risk"],
        }
        call.emit("final", prediction_subject(machine, seq), data)
        call.emit("prediction", f"machine:{machine}", data)
        if not record["at_risk"]:
            return
        record_now = existing_machine(call.state, machine)
        if record_now.status is not MachineStatus.RUNNING:
            return  # already degraded, down or in maintenance: one work order is enough
        reading = read_reading(call.state, machine, seq)
        if reading is None:
            raise StateError(f"prediction on {machine} reading {seq} names no stored reading")
        if int(reading["at_ms"]) <= record_now.status_since_ms:
            # Taken before the machine last came back into service (a repair, a new tool):
            # the prediction is recorded, but says nothing about the machine as it is now.
            # A reading stamped with the very time of the return (its block, or a later block
            # with the same time: block times never decrease) counts as taken before it, since
            # state cannot tell which came first, and a worn tool's readings reported beside
            # its repair must not flag the repaired machine. Such a reading taken just after
            # the return goes unacted on; the machine's next readings speak for it.
            return
        reason = (
            f"oracle predicts failure within {model['horizon']} operations "
            f"({value} bp >= {model['threshold_bp']} bp, reading {seq})"
        )
        flag_machine_at_risk(call, machine, value, source="oracle", reason=reason)
        open_work_order(call, machine, reason, source="oracle")

    def query(self, state: StateReader, path: Sequence[str]) -> Any:
        if not path:
            return {
                "params": read_map(state, PARAMS_KEY),
                "model": _model_view(registered_model(state)),
            }
        if path[0] == "model" and len(path) == 1:
            return _model_view(registered_model(state))
        if path[0] == "predictions" and len(path) == 2:
            prefix = PREDICTION_PREFIX + f"{path[1]}/".encode()
            newest = state.scan_last(prefix, PREDICTIONS_QUERY_MAX)
            return [_prediction_view(decode_map(k, v)) for k, v in newest]
        if path[0] == "prediction" and len(path) == 3 and is_decimal(path[2]):
            record = read_map(state, prediction_key(path[1], int(path[2])))
            if record is None:
                raise QueryError(f"no reports on machine {path[1]} reading {path[2]}")
            return _prediction_view(record)
        raise QueryError(
            "oracle queries take [], ['model'], ['predictions', machine] (the newest "
            f"{PREDICTIONS_QUERY_MAX}) or "
            f"['prediction', machine, seq], got {list(path)!a}"
        )


def _model_view(model: dict[str, Any] | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {**model, "hash": bytes(model["hash"]).hex()}


def _prediction_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **record,
        "model": bytes(record["model"]).hex(),
        "reporter_keys": [bytes(key).hex() for key in record.get("reporter_keys", [])],
    }
