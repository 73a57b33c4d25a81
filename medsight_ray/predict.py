"""``python -m medsight_ray.predict``: run a trained checkpoint on one image.

    python -m medsight_ray.predict --checkpoint OUT/final_model.pt --image xray.dcm [--out DIR]

Concept model: prints concept scores and disease probabilities, and writes a PNG of
the image with the top CAMs overlaid (``cams.png``). Grader: prints the class
probabilities and the grade. Segmenter: writes the mask (``mask.png``) and an overlay.
``OUT/prediction.json`` holds the numbers. PNG, JPEG and DICOM inputs are read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsight_ray import atomicfile, flags
from medsight_ray.data.images import encode_png, read_image_file, resize
from medsight_ray.errors import exit_on_error
from medsight_ray.report.overlay import overlay
from medsight_ray.stages.inference import load_model, model_input, upsample


def predict(checkpoint: str | Path, image_path: str | Path, out: str | Path, top: int = 3) -> dict[str, Any]:
    """Predict one image; writes figures and ``prediction.json`` to ``out``."""
    stage, cfg, info, model = load_model(checkpoint)
    size = cfg.data.image_size
    pixels = resize(read_image_file(Path(image_path), info.image_mode), size)
    x = model_input(pixels)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        outputs = model(x)
    result: dict[str, Any] = {"task": stage.task, "stage": stage.name, "image": str(image_path)}
    if stage.task == "concepts":
        scores = torch.sigmoid(outputs["concept_logits"][0])
        result["concepts"] = {n: round(float(s), 4) for n, s in zip(info.concept_names, scores)}
        if stage.order == 3:
            probs = torch.sigmoid(outputs["task_logits"][0])
            result["diseases"] = {n: round(float(p), 4) for n, p in zip(info.target_names, probs)}
        order = torch.argsort(scores, descending=True)[:top].tolist()
        cams = torch.sigmoid(outputs["cams"][0])
        overlay(pixels, [(f"{info.concept_names[k]} {float(scores[k]):.2f}", upsample(cams[k], size))
                          for k in order], out_dir / "cams.png")
        result["figure"] = str(out_dir / "cams.png")
    elif stage.task == "grading":
        probs = torch.softmax(outputs["logits"][0], 0)
        result["probabilities"] = {n: round(float(p), 4) for n, p in zip(info.class_names, probs)}
        result["grade"] = info.class_names[int(probs.argmax())]
    else:
        prob = torch.sigmoid(outputs["mask_logits"][0, 0])
        mask = (prob >= cfg.threshold).numpy()
        atomicfile.write_bytes(out_dir / "mask.png", encode_png(mask.astype(np.uint8) * 255))
        overlay(pixels, [("foreground probability", prob.numpy())], out_dir / "overlay.png")
        result.update(mask=str(out_dir / "mask.png"), foreground_share=round(float(mask.mean()), 4))
    atomicfile.write_text(out_dir / "prediction.json", json.dumps(result, indent=2))
    return result


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    p = argparse.ArgumentParser(prog="python -m medsight_ray.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="model.pt, or a checkpoint directory")
    p.add_argument("--image", required=True, help="PNG, JPEG or DICOM file")
    flags.add(p, "--out")
    p.add_argument("--top", type=int, default=3, help="CAMs to draw (concept model)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    out = flags.default_out(args, "predict")
    result = predict(args.checkpoint, args.image, out, args.top)
    for key in ("grade", "probabilities", "diseases", "foreground_share", "figure", "mask"):
        if key in result:
            print(f"{key}: {result[key]}")
    if "concepts" in result:
        best = sorted(result["concepts"].items(), key=lambda kv: -kv[1])[:5]
        print("top concepts: " + ", ".join(f"{n} {s:.3f}" for n, s in best))
    print(f"wrote {out / 'prediction.json'}")
    return 0


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
