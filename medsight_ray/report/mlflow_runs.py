"""A sweep or a train run in MLflow, where teams compare runs side by side.

A sweep is a parent run, and each trial a child run (``mlflow.parentRunId``) holding:

* params: the trial's flat config (the stage's base config with its sampled keys);
* metrics: every per-epoch scalar of its history at ``step=epoch``, the health signals
  among them (``train/grad_norm``, ``train/update_ratio``, the loss against its start,
  ...) and the validation metrics;
* tags: its outcome (``medsight.status``, ``medsight.health``, ``medsight.stop_reason``,
  ``medsight.first_cause``), every diagnosis (``medsight.diagnosis.<rule>`` and
  ``medsight.diagnoses`` as JSON) and its remedy lineage (``medsight.lineage.*``, with
  the parent trial's MLflow run id);
* artifacts: its best checkpoint's ``model.pt``.

The parent holds the sweep's report and ``summary.json``. A ``train`` run is one run
with the same contents (a pipeline: a parent with a child run per stage).

Why MLflow's own client and not Ray Tune's ``MLflowLoggerCallback``: the callback logs
what a trial reports while it runs, but a trial's outcome (its stop reason, the rule
that fired first, whether a remedy healed it, which trial it answers) is settled by the
driver after the trial ends, and lives only in the sweep's summary. The callback has no
place for it, and no parent/child runs. So the export reads that one record, the same
one the report reads, and writes each run whole when the sweep ends. Every value passes
through :func:`medsight_ray.errors.redact_all`, so no key in a URI reaches the tracker.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medsight_ray.config import flatten
from medsight_ray.errors import redact_all
from medsight_ray.fit.checkpoint import copy_model_file
from medsight_ray.report.summary import first_cause, health_class

#: ``--mlflow`` without a URI: a SQLite store and its artifacts in the run's folder.
EMBEDDED = "embedded"
EXPERIMENT = "medsight_ray"
#: MLflow's limits on one ``log_batch`` call.
_PARAMS_PER_BATCH, _METRICS_PER_BATCH, _PARAM_CHARS = 100, 1000, 6000


def tracking_uri(option: str, out: Path) -> str:
    """The tracking URI for ``--mlflow``: a server (``http://host:5000``), a database
    (``sqlite:///file.db``, ``postgresql://...``), a local folder (a SQLite store in it:
    MLflow 3 keeps its file store in maintenance only), or :data:`EMBEDDED`, which is
    the folder ``OUT/mlflow``."""
    if "://" in option or option.startswith("sqlite:"):
        return option
    folder = out / "mlflow" if option == EMBEDDED else Path(option)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def client_for(uri: str, out: Path) -> tuple[Any, str]:
    """An MLflow client for ``uri`` and the id of the :data:`EXPERIMENT` experiment (made
    when missing; a SQLite store keeps its artifacts beside its database file)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return client, experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return client, client.create_experiment(EXPERIMENT, artifact_location=location)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _log(client: Any, run_id: str, params: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Params (the flat config) and the per-epoch scalars of ``history`` at step = epoch."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    param_list = [Param(k, redact_all(json.dumps(v) if isinstance(v, list | dict) else str(v))[:_PARAM_CHARS])
                  for k, v in sorted(params.items())]
    metrics = [Metric(k, float(v), now, int(row["epoch"])) for row in history if "epoch" in row
               for k, v in row.items() if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)]
    for chunk in _chunks(param_list, _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=list(chunk))
    for chunk in _chunks(metrics, _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=list(chunk))


def _outcome_tags(record: dict[str, Any]) -> dict[str, str]:
    """A trial's or stage run's outcome and diagnoses as tags."""
    tags = {"medsight.status": record.get("status", ""), "medsight.health": health_class(record),
            "medsight.stop_reason": record.get("stop_reason") or "", "medsight.first_cause": first_cause(record) or "",
            "medsight.epochs_run": str(record.get("epochs_run", "")),
            "medsight.diagnoses": json.dumps([{k: d.get(k) for k in ("rule", "severity", "epoch", "remedies")}
                                              for d in record.get("diagnoses", [])])}
    for diag in record.get("diagnoses", []):
        tags[f"medsight.diagnosis.{diag['rule']}"] = f"{diag.get('severity')} at epoch {diag.get('epoch')}"
    return tags


def _lineage_tags(lineage: dict[str, Any] | None, run_of: dict[str, str]) -> dict[str, str]:
    if not lineage:
        return {}
    tags = {f"medsight.lineage.{k}": json.dumps(v) if isinstance(v, list | dict) else str(v)
            for k, v in lineage.items()}
    if lineage.get("parent") in run_of:
        tags["medsight.lineage.parent_run_id"] = run_of[lineage["parent"]]
    return tags


def _status(record: dict[str, Any]) -> str:
    return {"errored": "FAILED", "health-stopped": "KILLED", "early-stopped": "KILLED"}.get(health_class(record),
                                                                                           "FINISHED")


def _set_tags(client: Any, run_id: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_tag(run_id, key, redact_all(value)[:5000])


def _log_model(client: Any, run_id: str, checkpoint: str | None) -> None:
    """The checkpoint's ``model.pt`` (local or on object storage) as the run's artifact."""
    if not checkpoint:
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy_model_file(checkpoint, Path(tmp) / "model.pt")
        client.log_artifact(run_id, str(Path(tmp) / "model.pt"), "checkpoint")


def export_sweep(summary: dict[str, Any], uri: str, out: Path) -> str:
    """Log a sweep's ``summary`` (in memory: its checkpoint URIs still open) to MLflow at
    ``uri``; returns the parent run's id. ``out`` holds the report and summary."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client, experiment = client_for(uri, out)
    parent = client.create_run(experiment, run_name=f"sweep {out.name}", tags={
        "medsight.kind": "sweep", "medsight.data": redact_all(str(summary.get("data", ""))),
        "medsight.stages": ", ".join(s["stage"] for s in summary.get("stages", []))}).info.run_id
    for section in summary.get("stages", []):
        base = flatten(section.get("base_config", {}))
        run_of: dict[str, str] = {}
        for trial in section["trials"]:
            run_id = client.create_run(experiment, run_name=f"{section['stage']} {trial['trial_id']}", tags={
                MLFLOW_PARENT_RUN_ID: parent, "medsight.kind": "trial", "medsight.stage": section["stage"],
                "medsight.trial_id": trial["trial_id"]}).info.run_id
            run_of[trial["trial_id"]] = run_id
            _log(client, run_id, {**base, **trial["config"]}, trial.get("history", []))
            _log_model(client, run_id, trial.get("checkpoint"))
        for trial in section["trials"]:  # lineage after every run exists: it names its parent's run
            run_id = run_of[trial["trial_id"]]
            _set_tags(client, run_id, _outcome_tags(trial) | _lineage_tags(trial.get("lineage"), run_of))
            client.set_terminated(run_id, _status(trial))
        best = section.get("best")
        if best:
            client.set_tag(parent, f"medsight.best.{section['stage']}", run_of[best["trial_id"]])
    _artifacts(client, parent, out)
    client.set_terminated(parent, "FAILED" if summary.get("failed") else "FINISHED")
    return parent


def export_train(summary: dict[str, Any], uri: str, out: Path) -> str:
    """Log a ``train`` summary to MLflow at ``uri``: one run, or for a pipeline a parent
    with a run per stage; returns the (parent) run's id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client, experiment = client_for(uri, out)
    runs = summary.get("runs", [])
    lineages = summary.get("lineages", {})
    top = client.create_run(experiment, run_name=f"train {summary.get('task')} {out.name}", tags={
        "medsight.kind": "train", "medsight.data": redact_all(str(summary.get("data", ""))),
        "medsight.fingerprint": str(summary.get("fingerprint", ""))}).info.run_id
    for run in runs:
        run_id = top
        if len(runs) > 1:
            run_id = client.create_run(experiment, run_name=f"{run['task']}/{run['stage']}", tags={
                MLFLOW_PARENT_RUN_ID: top, "medsight.kind": "stage"}).info.run_id
        _log(client, run_id, flatten(run.get("config", {})), run.get("history", []))
        tags = _outcome_tags(run) | {"medsight.stage": f"{run['task']}/{run['stage']}"}
        if run["stage"] in lineages:
            tags["medsight.lineage"] = json.dumps(lineages[run["stage"]])
        _set_tags(client, run_id, tags)
        if len(runs) > 1:
            _log_model(client, run_id, run.get("checkpoint"))
            client.set_terminated(run_id, _status(run))
    if len(runs) == 1 and (out / "final_model.pt").is_file():
        client.log_artifact(top, str(out / "final_model.pt"), "checkpoint")
    _artifacts(client, top, out)
    client.set_terminated(top, "FAILED" if summary.get("failed") else "FINISHED")
    return top


def _artifacts(client: Any, run_id: str, out: Path) -> None:
    """The run's ``summary.json`` and report, as written to ``out`` (already redacted)."""
    if (out / "summary.json").is_file():
        client.log_artifact(run_id, str(out / "summary.json"))
    if (out / "report").is_dir():
        client.log_artifacts(run_id, str(out / "report"), "report")
