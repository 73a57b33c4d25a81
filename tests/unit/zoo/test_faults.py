"""The zoo's faults: data rewritten as a faulty importer would write it (values checked
row by row, footer kept), and stage subclasses whose bug is the one they claim."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from medsight_ray.data.images import decode_image
from medsight_ray.data.store import list_dataset, read_info
from medsight_ray.data.synth import synthesize
from medsight_ray.zoo.datafaults import group_by_label, shift_masks, swap_box_xy


def _rows(path: Path, split: str = "train") -> list[dict]:
    return pq.read_table(path / f"{split}-00000.parquet").to_pylist()


def test_swapped_boxes_exchange_x_and_y_and_keep_the_rest(tmp_path: Path) -> None:
    synthesize("concepts", tmp_path / "a", rows=20, image_size=32, seed=1)
    swap_box_xy(tmp_path / "a", tmp_path / "b")
    before, after = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert sum(len(r["boxes"]) for r in before) > 0
    for r0, r1 in zip(before, after):
        assert r0["image"] == r1["image"] and r0["concepts"] == r1["concepts"]
        for b0, b1 in zip(r0["boxes"], r1["boxes"]):
            assert (b1["concept"], b1["x_min"], b1["y_min"], b1["x_max"], b1["y_max"]) == \
                (b0["concept"], b0["y_min"], b0["x_min"], b0["y_max"], b0["x_max"])
    assert read_info(list_dataset(tmp_path / "b")) == read_info(list_dataset(tmp_path / "a"))


def test_shifted_masks_move_a_quarter_of_the_image_against_their_images(tmp_path: Path) -> None:
    synthesize("segmentation", tmp_path / "a", rows=10, image_size=32, seed=1)
    shift_masks(tmp_path / "a", tmp_path / "b")
    for r0, r1 in zip(_rows(tmp_path / "a", "val"), _rows(tmp_path / "b", "val")):
        m0, m1 = decode_image(r0["mask"], "L"), decode_image(r1["mask"], "L")
        assert r0["image"] == r1["image"]
        np.testing.assert_array_equal(m1, np.roll(m0, (8, 8), axis=(0, 1)))


def test_rows_grouped_by_label_only_in_the_training_split(tmp_path: Path) -> None:
    synthesize("grading", tmp_path / "a", rows=60, image_size=16, seed=1)
    group_by_label(tmp_path / "a", tmp_path / "b")
    labels = [r["label"] for r in _rows(tmp_path / "b")]
    assert labels == sorted(labels) and labels != [r["label"] for r in _rows(tmp_path / "a")]
    assert sorted(labels) == sorted(r["label"] for r in _rows(tmp_path / "a"))
    assert _rows(tmp_path / "b", "val") == _rows(tmp_path / "a", "val")


def test_the_sign_flipped_stage_pushes_the_cam_out_of_the_box() -> None:
    """The zoo's SignFlippedBoxLoss: one step of its loss lowers the CAM inside the box
    and raises it outside, the opposite of the product's loss (which must raise it)."""
    from medsight_ray.data.boxes import box_masks
    from medsight_ray.models.concept import ConceptModel, ConceptModelConfig
    from medsight_ray.stages.concepts import ConceptsConfig, ConceptsStage
    from medsight_ray.zoo.faults import SignFlippedBoxLoss

    def cam_shift(stage: ConceptsStage) -> float:
        torch.manual_seed(0)
        model = ConceptModel(ConceptModelConfig(proj_dim=8, prototypes_per_concept=2), 1, 64, 3, 2)
        cfg = ConceptsConfig()
        ctx = SimpleNamespace(cfg=cfg, extra={"pos_weight": torch.ones(3)})
        batch = {"image": torch.randn(4, 1, 64, 64), "concepts": torch.ones(4, 3),
                 "boxes": torch.tensor([[[0, 0.0, 0.0, 0.5, 0.5]]] * 4)}
        inside, _, _ = box_masks(batch["boxes"], 8, 8)
        before = torch.sigmoid(model(batch["image"])["cams"][:, 0])[inside[:, 0]].mean()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            stage.train_step(model, batch, ctx)["loss"].backward()
            opt.step()
        return float((torch.sigmoid(model(batch["image"])["cams"][:, 0])[inside[:, 0]].mean() - before).detach())

    assert cam_shift(ConceptsStage()) > 0
    assert cam_shift(SignFlippedBoxLoss()) < 0


def test_identical_prototypes_start_equal() -> None:
    from medsight_ray.models.concept import ConceptModel, ConceptModelConfig
    from medsight_ray.stages.prototypes import within_similarity
    from medsight_ray.zoo.faults import IdenticalPrototypes

    model = ConceptModel(ConceptModelConfig(proj_dim=8, prototypes_per_concept=3), 1, 64, 4, 2)
    assert within_similarity(model.normalised_prototypes().detach()) < 0.5
    IdenticalPrototypes().prepare(SimpleNamespace(model=model))
    assert within_similarity(model.normalised_prototypes().detach()) == pytest.approx(1.0, abs=1e-6)
