"""Where a finished run goes besides its summary: TensorBoard event files always, MLflow
when ``--mlflow`` asks. One entry for ``train`` and ``tune`` alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medsight_ray.errors import ConfigError, redact

Kind = Literal["sweep", "train"]


def check_mlflow(option: str | None, out: Path) -> str | None:
    """The tracking URI ``--mlflow`` names, checked before any training: MLflow is
    installed and the store answers (its experiment is made if missing). None without
    ``--mlflow``.

    Raises:
        ConfigError: MLflow is not installed, or the store cannot be reached.
    """
    if option is None:
        return None
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("--mlflow needs MLflow", where="--mlflow", expected="mlflow installed",
                          got="no module named mlflow", fix="pip install 'medsight_ray[mlflow]'") from None
    from medsight_ray.report.mlflow_runs import client_for, tracking_uri

    uri = tracking_uri(option, out)
    try:
        client_for(uri, out)
    except Exception as err:  # MLflow raises its own, requests' and SQLAlchemy's errors
        raise ConfigError("the MLflow tracking store does not answer", where=f"--mlflow {redact(uri)}",
                          expected="a reachable tracking server, database or folder",
                          got=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]) from None
    return uri


def export(kind: Kind, summary: dict[str, Any], out: Path, mlflow_uri: str | None) -> list[str]:
    """Write the TensorBoard event files and, with ``mlflow_uri``, the MLflow runs of a
    finished sweep or train ``summary`` (in memory: its checkpoint URIs still open).
    Returns the lines to show. A tracker that fails now costs its lines, not the run:
    the results are already in ``summary.json``."""
    from medsight_ray.report import tensorboard_events

    lines = []
    writer = tensorboard_events.write_sweep if kind == "sweep" else tensorboard_events.write_train
    try:
        lines.append(f"tensorboard: tensorboard --logdir {writer(summary, out)}")
    except OSError as err:
        lines.append(f"tensorboard event files not written: {err}")
    if mlflow_uri is not None:
        from medsight_ray.report import mlflow_runs

        try:
            run_id = (mlflow_runs.export_sweep if kind == "sweep" else mlflow_runs.export_train)(
                summary, mlflow_uri, out)
            lines.append(f"mlflow: run {run_id} in experiment {mlflow_runs.EXPERIMENT!r} at {redact(mlflow_uri)}")
        except Exception as err:  # a tracker going away after training must not lose the run
            lines.append(f"mlflow: not logged ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
    return lines
