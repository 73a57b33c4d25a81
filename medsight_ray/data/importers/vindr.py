"""Import VinDr-CXR: its annotation CSV plus a folder of PNG or DICOM images.

The CSV has one row per (image, radiologist, finding)::

    image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max

with boxes in original-image pixels and "No finding" rows without a box. Several
radiologists read each image.

Merge rule (documented, deterministic):

1. Per image and concept, boxes of all radiologists are clustered greedily in CSV
   order: a box joins the first cluster whose mean box overlaps it with IoU >=
   ``iou`` and that holds no box of the same radiologist yet; otherwise it starts a
   cluster.
2. A cluster marked by at least ``min_votes`` distinct radiologists becomes one box,
   the mean of its members' coordinates.
3. A concept is present when it keeps at least one box.
4. Target "No finding" is 1 when no concept is present. Other global labels (Lung
   tumor, Pneumonia, ...) come from VinDr's ``image_labels_*.csv`` when given
   or from global-label rows in the annotation CSV (present when at least
   ``min_votes`` radiologists marked it); without either, the dataset's only target
   is "No finding".

Boxes are normalised by each image's real size: the DICOM's Rows/Columns, the PNG's
size, or ``sizes`` (``image_id,width,height``) when the PNGs were downscaled from the
originals the boxes refer to. A box beyond its image is an error that says so.
DICOM ``PatientID`` (when present) is the patient id; otherwise the image id. Image ids are
the CSV's (VinDr's own anonymised hashes), never formed from the PatientID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medsight_ray.data.csvfile import read_csv
from medsight_ray.data.images import DICOM_SUFFIXES, UNDECODABLE, encode_png, read_dicom, read_image_file, resize
from medsight_ray.data.importers.common import write_items
from medsight_ray.data.location import Location
from medsight_ray.data.schema import VINDR_CONCEPTS, VINDR_TARGETS, DatasetInfo
from medsight_ray.errors import DataError

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
CSV_COLUMNS = ("image_id", "class_name", "rad_id", *BOX_COLUMNS)
NO_FINDING = "No finding"


@dataclass
class _Image:
    image_id: str
    path: Location
    boxes: dict[int, list[tuple[str, np.ndarray]]] = field(default_factory=dict)  # concept -> [(rad, box)]
    targets: dict[str, set[str]] = field(default_factory=dict)  # target name -> raters


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_boxes(marks: list[tuple[str, np.ndarray]], iou: float, min_votes: int) -> list[np.ndarray]:
    """Merge one concept's boxes from several radiologists (rules 1–2 above).

    Args:
        marks: (radiologist id, box (4,) x_min, y_min, x_max, y_max) in CSV order.

    Returns:
        merged boxes, each (4,), in cluster order.
    """
    clusters: list[list[tuple[str, np.ndarray]]] = []
    for rad, box in marks:
        for cluster in clusters:
            mean = np.mean([b for _, b in cluster], axis=0)
            if rad not in {r for r, _ in cluster} and _iou(mean, box) >= iou:
                cluster.append((rad, box))
                break
        else:
            clusters.append([(rad, box)])
    return [np.mean([b for _, b in c], axis=0) for c in clusters if len({r for r, _ in c}) >= min_votes]


def _read_csv(path: Location) -> pd.DataFrame:
    """The annotation rows, box coordinates as floats (NaN where a row has no box)."""
    frame = read_csv(path, "VinDr-CXR annotations CSV", CSV_COLUMNS,
                     dtype={"image_id": str, "class_name": str, "rad_id": str})
    for col in BOX_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce")
        wrong = values.isna() & frame[col].notna()
        if wrong.any():
            row = int(wrong.to_numpy().nonzero()[0][0])
            raise DataError("box coordinate is not a number",
                            where=f"{path} line {row + 2} column {col!r} (image_id {frame.image_id.iloc[row]})",
                            expected="a number of pixels, or empty for a row without a box",
                            got=repr(frame[col].iloc[row]))
        frame[col] = values.astype(float)
    return frame


def _read_sizes(path: Location) -> dict[str, tuple[int, int]]:
    """``image_id,width,height`` of the original images: image id -> (width, height)."""
    frame = read_csv(path, "image sizes CSV", ("image_id", "width", "height"), dtype={"image_id": str})
    wh = frame[["width", "height"]].apply(pd.to_numeric, errors="coerce")
    bad = ~(wh > 0).all(axis=1) | (wh % 1 != 0).any(axis=1)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError("image size is not a positive whole number of pixels",
                        where=f"{path} line {row + 2} (image_id {frame.image_id.iloc[row]})",
                        expected="width and height as positive integers",
                        got=f"width {frame.width.iloc[row]!r}, height {frame.height.iloc[row]!r}")
    return {i: (int(w), int(h)) for i, w, h in zip(frame.image_id, wh.width, wh.height, strict=True)}


def _find_images(folder: Location, ids: list[str]) -> tuple[dict[str, Location], list[str]]:
    if not folder.is_dir():
        raise DataError("image folder does not exist", where=str(folder), expected="a folder of PNG/DICOM images",
                        got="no such directory")
    by_stem: dict[str, Location] = {}
    for p in folder.iterdir():
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", *DICOM_SUFFIXES):
            by_stem.setdefault(p.stem, p)
    return {i: by_stem[i] for i in ids if i in by_stem}, [i for i in ids if i not in by_stem]


def _image_meta(path: Location) -> tuple[int, int, str | None]:
    """(width, height, patient id or None) of an image file, without decoding PNG pixels.

    Raises:
        DataError: the file is not a readable DICOM or image header (names the file).
    """
    if path.suffix.lower() in DICOM_SUFFIXES:
        import pydicom

        try:
            with path.open() as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            pid = str(ds.get("PatientID", "")).strip() or None
            return int(ds.Columns), int(ds.Rows), pid
        except Exception as err:  # pydicom raises many types for a broken file, and AttributeError without Rows
            raise DataError("DICOM header does not read", where=str(path),
                            expected="a DICOM image with Rows and Columns",
                            got=f"{type(err).__name__}: {err}") from None
    from PIL import Image

    try:
        with path.open() as fh, Image.open(fh) as img:
            return img.size[0], img.size[1], None
    except UNDECODABLE as err:
        raise DataError("image file does not read", where=str(path), expected="a PNG or JPEG image",
                        got=f"{type(err).__name__}: {err}") from None


def import_vindr(
    csv: str | Path | Location,
    images: str | Path | Location,
    out: str | Path,
    image_size: int = 512,
    min_votes: int = 1,
    iou: float = 0.4,
    image_labels: str | Path | Location | None = None,
    sizes: str | Path | Location | None = None,
    skip_missing: bool = False,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    parallel: bool = False,
    concept_names: tuple[str, ...] | None = None,
) -> tuple[DatasetInfo, dict[str, int]]:
    """Write VinDr-CXR annotations and images as a ``concepts`` dataset at ``out``.

    Args:
        concept_names: the concept list. ``None`` (default) keeps the VinDr-CXR
            findings that occur in the CSV, in VinDr order: the Kaggle release has
            14 of the 22, and a concept never present is an all-zero label column.
            Pass :data:`VINDR_CONCEPTS` (``--concepts vindr22``) to keep all 22, or an
            explicit list so that separately imported sets share one layout.

    Returns:
        the dataset info, and counts: ``images``, ``skipped_missing`` (images in the
        CSV without a file, only with ``skip_missing``), ``boxes``.
    """
    csv, images = Location.of(csv), Location.of(images)
    frame = _read_csv(csv)
    if concept_names is None:
        seen = {n.lower() for n in frame["class_name"].unique()}
        concept_names = tuple(c for c in VINDR_CONCEPTS if c.lower() in seen)
    lower = {c.lower(): i for i, c in enumerate(concept_names)}
    unknown = sorted({n for n in frame["class_name"].unique()
                      if n.lower() not in lower and n != NO_FINDING and n not in VINDR_TARGETS})
    if unknown:
        raise DataError("class names not in the concept list", where=f"{csv} column 'class_name'",
                        expected=f"one of {list(concept_names)} or {NO_FINDING!r}", got=str(unknown))
    ids = list(dict.fromkeys(frame["image_id"]))
    found, missing = _find_images(images, ids)
    if missing and not skip_missing:
        raise DataError("images named in the CSV are not in the image folder", where=str(images),
                        expected="<image_id>.png/.jpg/.dcm for every image id",
                        got=f"{len(missing)} missing, e.g. {missing[:3]}",
                        fix="add the files, or pass --skip-missing to import only the images present "
                            "(the count skipped is reported)")
    size_override: dict[str, tuple[int, int]] = {}
    if sizes is not None:
        size_override = _read_sizes(Location.of(sizes))
    label_votes = _read_image_labels(Location.of(image_labels)) if image_labels is not None else {}

    records: dict[str, _Image] = {i: _Image(i, p) for i, p in found.items()}
    meta: dict[str, tuple[int, int, str | None]] = {}
    for i, rec in records.items():
        w, h, pid = _image_meta(rec.path)
        if i in size_override:
            w, h = size_override[i]
        meta[i] = (w, h, pid)
    for row_no, row in enumerate(frame.itertuples(index=False), start=2):
        rec = records.get(row.image_id)
        if rec is None or row.class_name == NO_FINDING:
            continue
        if row.class_name.lower() not in lower:
            rec.targets.setdefault(row.class_name, set()).add(row.rad_id)
            continue
        box = np.array([row.x_min, row.y_min, row.x_max, row.y_max], dtype=np.float64)
        w, h, _ = meta[row.image_id]
        where = f"{csv} line {row_no} (image_id {row.image_id})"
        if not np.isfinite(box).all():
            raise DataError("finding without a box", where=where, expected="x_min, y_min, x_max, y_max",
                            got=str(box.tolist()))
        if box[0] >= box[2] or box[1] >= box[3] or box.min() < 0 or box[2] > w or box[3] > h:
            raise DataError("box does not fit its image", where=where,
                            expected=f"0 <= x_min < x_max <= {w} and 0 <= y_min < y_max <= {h} (image size)",
                            got=str(box.tolist()),
                            fix="if the images were downscaled, pass --sizes with the original sizes")
        rec.boxes.setdefault(lower[row.class_name.lower()], []).append((row.rad_id, box / [w, h, w, h]))

    has_global = image_labels is not None or any(rec.targets for rec in records.values())
    target_names = tuple(VINDR_TARGETS) if has_global else (NO_FINDING,)
    # Labels are settled here, on the driver, so that what is counted is what is written
    # (make_row below may run in Ray Data's worker processes, whose counts never return).
    labels = {rec.image_id: _labels(rec, len(concept_names), target_names, label_votes, iou, min_votes)
              for rec in records.values()}
    counts = {"images": len(records), "skipped_missing": len(missing),
              "boxes": sum(len(row["boxes"]) for row in labels.values())}

    def make_row(rec: _Image) -> dict:
        pixels = read_dicom(rec.path) if rec.path.suffix.lower() in DICOM_SUFFIXES else read_image_file(rec.path, "L")
        return {"image_id": rec.image_id, "image": encode_png(resize(pixels, image_size)), **labels[rec.image_id]}

    info = DatasetInfo("concepts", "L", tuple(concept_names), target_names,
                       source=f"medsight_ray import vindr {csv.name} min_votes={min_votes} iou={iou}")
    info = write_items(out, info, list(records.values()), lambda r: meta[r.image_id][2] or r.image_id,
                       make_row, val_fraction, test_fraction, seed, parallel)
    return info, counts


def _labels(rec: _Image, n_concepts: int, target_names: tuple[str, ...], label_votes: dict[str, dict[str, int]],
            iou: float, min_votes: int) -> dict[str, list]:
    """One image's ``concepts``, ``targets`` and merged ``boxes`` (rules 1-4 above)."""
    concepts = [0] * n_concepts
    boxes = []
    for k, marks in sorted(rec.boxes.items()):
        for b in merge_boxes(marks, iou, min_votes):
            concepts[k] = 1
            boxes.append({"concept": k, "x_min": float(b[0]), "y_min": float(b[1]),
                          "x_max": float(b[2]), "y_max": float(b[3])})
    targets = []
    for name in target_names:
        if name == NO_FINDING:
            targets.append(int(not any(concepts)))
        else:
            votes = label_votes.get(rec.image_id, {}).get(name, 0) + len(rec.targets.get(name, ()))
            targets.append(int(votes >= min_votes))
    return {"concepts": concepts, "targets": targets, "boxes": boxes}


def _read_image_labels(path: Location) -> dict[str, dict[str, int]]:
    """VinDr ``image_labels_*.csv``: image id -> global label -> number of raters marking it."""
    frame = read_csv(path, "VinDr image-label CSV", ("image_id", *VINDR_TARGETS), dtype={"image_id": str})
    sums = frame.groupby("image_id")[list(VINDR_TARGETS)].sum()
    return {i: {k: int(v) for k, v in row.items()} for i, row in sums.iterrows()}
