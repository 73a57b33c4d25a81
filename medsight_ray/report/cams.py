"""CAM overlays of a concept model on a few validation images, with their ground-truth boxes.

For each image with at least one box, the panels show the CAM of each boxed concept
(sigmoid of the CAM, in [0, 1]) over the image: a model that localises puts its heat
inside the green boxes. Only the image id the dataset gives is written, never the
patient id.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import torch

from medsight_ray.data.images import decode_image, resize
from medsight_ray.data.store import list_dataset
from medsight_ray.report.overlay import overlay
from medsight_ray.stages.inference import load_model, model_input, upsample


def cam_overlays(checkpoint: str, data: str, out: Path, images: int = 4, concepts_per_image: int = 3,
                 ) -> list[tuple[Path, str]]:
    """Write ``cams-<i>.png`` for up to ``images`` boxed validation rows; returns (path, caption)."""
    stage, cfg, info, model = load_model(checkpoint)
    if stage.task != "concepts":
        return []
    files = list_dataset(data)
    size = cfg.data.image_size
    written: list[tuple[Path, str]] = []
    for path in files.by_split.get("val", []):
        with files.filesystem.open_input_file(path) as fh:
            table = pq.read_table(fh, columns=["image_id", "image", "boxes"])
        for row in table.to_pylist():
            if len(written) >= images:
                return written
            if not row["boxes"]:
                continue
            pixels = resize(decode_image(row["image"], info.image_mode, where=f"image_id {row['image_id']}"), size)
            with torch.no_grad():
                outputs = model(model_input(pixels))
            scores = torch.sigmoid(outputs["concept_logits"][0])
            cams = torch.sigmoid(outputs["cams"][0].float())
            boxed = list(dict.fromkeys(int(b["concept"]) for b in row["boxes"]))[:concepts_per_image]
            panels = [(f"{info.concept_names[k]} p={float(scores[k]):.2f}", upsample(cams[k], size)) for k in boxed]
            target = out / f"cams-{len(written)}.png"
            overlay(pixels, panels, target, boxes=[(b["x_min"], b["y_min"], b["x_max"], b["y_max"])
                                                  for b in row["boxes"]])
            names = ", ".join(info.concept_names[k] for k in boxed)
            written.append((target, f"image {row['image_id']}: CAMs of its boxed concepts ({names}), "
                                    "ground-truth boxes in green"))
    return written
