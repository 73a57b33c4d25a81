"""Bad configuration and impossible requests through the CLIs: each ends before any
training with exit code 2, one message naming what was expected, what came and where,
and no traceback. (Bad *data* is covered case by case in tests/unit/data/test_checks.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from medsight_ray import predict, train
from medsight_ray.fit.checkpoint import save_checkpoint
from medsight_ray.tune import __main__ as tune_cli
from medsight_ray.zoo import __main__ as zoo_cli
from tests.conftest import run_cli

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

TINY = ["--set", "fit.epochs=1", "--set", "data.image_size=32", "--set", "model.backbone.name=resnet10t"]


def _not_a_dir(tmp: Path) -> Path:
    """A path whose parent is a file: no directory can be made there, not even by root."""
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "sub"


def _garbage_checkpoint(tmp: Path) -> Path:
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "model.pt").write_bytes(b"\x80\x02garbage, not a zip or pickle")
    return tmp / "ckpt"


def _foreign_checkpoint(tmp: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp / "foreign.pt")
    return tmp / "foreign.pt"


def _other_task_checkpoint(tmp: Path) -> Path:
    meta = {"task": "segmentation", "stage": "segmentation", "config": {}, "info": "{}", "fingerprint": "x"}
    save_checkpoint(tmp / "seg", {"w": torch.zeros(1)}, meta, None, [])
    return tmp / "seg"


# (name, CLI, argv builder(tmp, data dir), fragments the message must contain)
Case = tuple[str, str, Callable[[Path, Path], list[str]], list[str]]
CASES: list[Case] = [
    ("unknown_config_key", "train", lambda t, d: ["--set", "fit.epochz=2"],
     ["unknown config key", "fit.epochz", "epochs"]),
    ("wrong_config_type", "train", lambda t, d: ["--set", "fit.epochs=many"], ["fit.epochs", "many"]),
    ("unknown_backbone", "train", lambda t, d: ["--set", "model.backbone.name=resnet9000"],
     ["resnet9000", "timm"]),
    ("missing_pretrained_file", "train", lambda t, d: ["--set", f"model.backbone.pretrained_path={t}/none.pt"],
     ["none.pt", "does not exist"]),
    ("corrupted_init_checkpoint", "train_s2", lambda t, d: ["--init", str(_garbage_checkpoint(t))],
     ["checkpoint does not load", "model.pt", "weights_only=True"]),
    ("foreign_init_checkpoint", "train_s2", lambda t, d: ["--init", str(_foreign_checkpoint(t))],
     ["not a medsight_ray checkpoint", "foreign.pt", "format"]),
    ("other_task_checkpoint", "train_s2", lambda t, d: ["--init", str(_other_task_checkpoint(t))],
     ["checkpoint is of another task", "'concepts'", "'segmentation'"]),
    ("unwritable_output", "train_out", lambda t, d: ["--out", str(_not_a_dir(t))],
     ["output/storage path is not writable", "afile/sub"]),
    ("unwritable_storage", "train", lambda t, d: ["--storage", str(_not_a_dir(t))],
     ["output/storage path is not writable", "afile/sub"]),
    ("more_workers_than_cpus", "train", lambda t, d: ["--workers", "64"],
     ["cannot hold the requested workers", "64 workers", "CPUs"]),
    ("gpu_without_gpus", "train", lambda t, d: ["--set", "fit.use_gpu=true"], ["not enough GPUs", "0 GPU"]),
    ("missing_dataset", "train_data", lambda t, d: ["--data", str(t / "nowhere")], ["nowhere", "does not exist"]),
    ("bad_yaml_config", "train", lambda t, d: ["--config", str(_write(t / "c.yaml", "fit: [unclosed"))],
     ["c.yaml", "YAML"]),
    ("missing_predict_checkpoint", "predict", lambda t, d: ["--checkpoint", str(t / "no.pt"), "--image",
                                                            str(t / "x.png")],
     ["checkpoint does not exist", "no.pt"]),
    ("space_low_above_high", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: loguniform, low: 1.0, high: 1.0e-3}")))], ["low is above high", "optim.lr"]),
    ("space_unknown_distribution", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: gaussian, low: 0.0, high: 1.0}")))], ["unknown distribution", "gaussian"]),
    ("space_unknown_key", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lrr: {dist: uniform, low: 0.0, high: 1.0}")))], ["optim.lrr", "unknown config key"]),
    ("tune_more_workers_than_cpus", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: uniform, low: 0.001, high: 0.1}"))), "--workers", "64"],
     ["cannot hold the requested workers", "64 workers"]),
    ("tune_unwritable_out", "tune", lambda t, d: ["--space", str(_write(t / "s.yaml", SPACE.format(
        "optim.lr: {dist: uniform, low: 0.001, high: 0.1}"))), "--out", str(_not_a_dir(t))],
     ["output/storage path is not writable"]),
    ("resume_not_a_sweep", "tune_resume", lambda t, d: ["--resume", "--out", str(t)],
     ["not the directory of an earlier sweep", "request.json"]),
    ("unknown_zoo_entry", "zoo", lambda t, d: ["--only", "lr_far_too_high,lr_too_hgih", "--out", str(t / "z")],
     ["unknown zoo entry", "--only lr_too_hgih", "lr_far_too_high"]),
]

SPACE = """stage: grading/grading
fixed: {{fit.epochs: 1, data.image_size: 32, model.backbone.name: resnet10t}}
params:
  {}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _argv(kind: str, tmp: Path, data: Path, concepts: Path, extra: list[str]) -> tuple[Callable, str, list[str]]:
    if kind == "predict":
        return predict.cli, "medsight_ray.predict", extra
    if kind == "zoo":
        return zoo_cli.cli, "medsight_ray.zoo", extra
    if kind.startswith("tune"):
        base = [] if kind == "tune_resume" else ["--data", str(data), "--out", str(tmp / "sweep")]
        return tune_cli.cli, "medsight_ray.tune", base + extra
    argv = {"--task": "grading", "--data": str(data), "--out": str(tmp / "out")}
    if kind == "train_s2":
        argv.update({"--task": "concepts", "--data": str(concepts)})
        extra = ["--stage", "prototypes", *extra]
    for flag in ("--out", "--data"):
        if flag in extra:
            argv.pop(flag)
    return train.cli, "medsight_ray.train", [x for kv in argv.items() for x in kv] + TINY + extra


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_exits_2_with_a_named_message(case: Case, synth_dir, tmp_path: Path, capsys) -> None:
    name, kind, build, fragments = case
    data, concepts = synth_dir("grading", rows=60), synth_dir("concepts", rows=160)
    cli, prog, argv = _argv(kind, tmp_path, data, concepts, build(tmp_path, data))
    code, text = run_cli(cli, prog, argv, capsys)
    assert code == 2, f"{name}: exit {code}\n{text[-2000:]}"
    assert "Traceback" not in text and text.count("error:") == 1, text[-2000:]
    for fragment in fragments:
        assert fragment in text, f"{name}: {fragment!r} missing from:\n{text[-2000:]}"
    assert not list(tmp_path.rglob("checkpoint_*")), f"{name}: training started"


def test_the_suite_has_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
