"""Importers on real data: VinDr-CXR annotations with a real DICOM, nuclei image/mask pairs."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medsight_ray.data.checks import check_dataset
from medsight_ray.data.images import read_dicom
from medsight_ray.data.importers.folders import import_class_folders
from medsight_ray.data.importers.pairs import import_pairs
from medsight_ray.data.importers.vindr import import_vindr, merge_boxes
from medsight_ray.data.schema import VINDR_CONCEPTS
from medsight_ray.errors import DataError
from tests.conftest import FIXTURES

CSV = FIXTURES / "vindr_sample.csv"
DICOM = FIXTURES / "cxr_small.dcm"
NUCLEI = FIXTURES / "nuclei"


def _rows(path: Path) -> list[dict]:
    return [r for f in sorted(path.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_dicom_monochrome1_is_inverted_to_bright_bone() -> None:
    import pydicom

    ds = pydicom.dcmread(str(DICOM))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    img = read_dicom(DICOM)
    raw = ds.pixel_array.astype(float)
    assert img.dtype == np.uint8 and img.shape == raw.shape
    # MONOCHROME1: high stored values are dark, so display brightness falls as raw rises.
    assert np.corrcoef(img.ravel(), raw.ravel())[0, 1] < -0.9


def test_merge_rule_clusters_overlapping_boxes_of_different_radiologists() -> None:
    a = np.array([10, 10, 50, 50.0])
    marks = [("R1", a), ("R2", a + 2), ("R3", np.array([200, 200, 240, 240.0])), ("R1", a + 1)]
    merged = merge_boxes(marks, iou=0.4, min_votes=1)
    assert len(merged) == 3  # R1's second box cannot join R1's own cluster
    assert np.allclose(merged[0], a + 1)
    assert len(merge_boxes(marks, iou=0.4, min_votes=2)) == 1


def test_vindr_import_on_real_annotations(vindr_images, tmp_path: Path) -> None:
    folder, sizes = vindr_images
    info, counts = import_vindr(CSV, folder, tmp_path / "out", image_size=64, sizes=sizes, val_fraction=0.3)
    frame = pd.read_csv(CSV)
    observed = set(frame.class_name) - {"No finding"}
    assert info.concept_names == tuple(c for c in VINDR_CONCEPTS if c in observed)
    assert info.target_names == ("No finding",)
    rows = {r["image_id"]: r for r in _rows(tmp_path / "out")}
    assert len(rows) == counts["images"] == 9
    size = pd.read_csv(sizes).set_index("image_id")
    for image_id, group in frame.groupby("image_id"):
        row = rows[image_id]
        names = {info.concept_names[k] for k, v in enumerate(row["concepts"]) if v}
        assert names == set(group.class_name) - {"No finding"}
        assert row["targets"] == [int(not names)]
        for b in row["boxes"]:
            assert 0 <= b["x_min"] < b["x_max"] <= 1 and 0 <= b["y_min"] < b["y_max"] <= 1
        # Every merged box is the mean of some radiologists' boxes, normalised by the real size.
        w, h = size.loc[image_id, ["width", "height"]]
        for b in row["boxes"]:
            name = info.concept_names[b["concept"]]
            cands = group[group.class_name == name]
            assert cands.x_min.min() / w - 1e-6 <= b["x_min"] <= cands.x_min.max() / w + 1e-6
        assert Image.open(io.BytesIO(row["image"])).size == (64, 64)
    # Nine images cannot give every concept a training positive; nothing else may be wrong.
    report = check_dataset(tmp_path / "out")
    assert report.errors.codes() <= {"all_zero_column"}, report.format()
    full, _ = import_vindr(CSV, folder, tmp_path / "full", image_size=32, sizes=sizes,
                           concept_names=VINDR_CONCEPTS)
    assert len(full.concept_names) == 22


def test_vindr_import_refuses_missing_images_and_oversized_boxes(vindr_images, tmp_path: Path) -> None:
    folder, sizes = vindr_images
    victim = sorted(folder.iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match="1 missing.*--skip-missing"):
        import_vindr(CSV, folder, tmp_path / "o1", image_size=32, sizes=sizes)
    _, counts = import_vindr(CSV, folder, tmp_path / "o2", image_size=32, sizes=sizes, skip_missing=True)
    assert counts["skipped_missing"] == 1 and counts["images"] == 8
    # Without --sizes the boxes (in original pixels) overflow the small real image.
    with pytest.raises(DataError, match="box does not fit its image.*--sizes"):
        import_vindr(CSV, folder, tmp_path / "o3", image_size=32, skip_missing=True)


def test_pairs_import_on_real_nuclei_keeps_masks_aligned(tmp_path: Path) -> None:
    info = import_pairs(NUCLEI / "images", NUCLEI / "masks", tmp_path / "seg", image_size=64,
                        patient_regex=r"tile_(\d)")
    rows = _rows(tmp_path / "seg")
    assert len(rows) == 16 and info.task == "segmentation"
    # Patients are image rows of tiles: tile_0x all share one split.
    by_patient = {}
    for r in rows:
        by_patient.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_patient.values()) and len(by_patient) == 4
    # Nuclei are bright: mask pixels are brighter than background in the imported tiles.
    img = np.concatenate([np.asarray(Image.open(io.BytesIO(r["image"]))).ravel() for r in rows])
    mask = np.concatenate([np.asarray(Image.open(io.BytesIO(r["mask"]))).ravel() for r in rows]) > 0
    assert img[mask].mean() > img[~mask].mean() + 40
    assert 0.05 < mask.mean() < 0.6
    assert check_dataset(tmp_path / "seg").ok


def test_pairs_import_refuses_unmatched_and_counts_allowed_missing(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(NUCLEI / "images", images)
    masks = tmp_path / "masks"
    shutil.copytree(NUCLEI / "masks", masks)
    (masks / "tile_00.png").unlink()
    with pytest.raises(DataError, match="images without a mask.*tile_00"):
        import_pairs(images, masks, tmp_path / "o", image_size=32)
    info = import_pairs(images, masks, tmp_path / "o", image_size=32, allow_missing_masks=True)
    assert "1 without mask" in info.source
    assert sum(not r["has_segmentation"] for r in _rows(tmp_path / "o")) == 1
    Image.fromarray(np.full((128, 128), 7, np.uint8)).save(masks / "tile_01.png")
    with pytest.raises(DataError, match="tile_01.png: mask is not binary.*e.g. \\[7\\]"):
        import_pairs(images, masks, tmp_path / "o", image_size=32, allow_missing_masks=True)


def test_class_folders_import(tmp_path: Path) -> None:
    root = tmp_path / "eyes"
    for name, files in (("normal", ["tile_00", "tile_01", "tile_02"]), ("cataract", ["tile_10", "tile_11"])):
        (root / name).mkdir(parents=True)
        for f in files:
            shutil.copy(NUCLEI / "images" / f"{f}.png", root / name / f"{f}.png")
    info = import_class_folders(root, tmp_path / "g", classes=["normal", "cataract"], image_size=32)
    rows = _rows(tmp_path / "g")
    assert info.class_names == ("normal", "cataract")
    assert sorted((r["image_id"], r["label"]) for r in rows)[0] == ("cataract/tile_10", 1)
    with pytest.raises(DataError, match="missing \\['glaucoma'\\]"):
        import_class_folders(root, tmp_path / "x", classes=["normal", "glaucoma"])


def test_import_cli_prints_counts_and_check(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "medsight_ray.data", "import", "pairs", "--images",
                          str(NUCLEI / "images"), "--masks", str(NUCLEI / "masks"), "--out", str(tmp_path / "o"),
                          "--image-size", "32", "--patient-regex", r"tile_(\d)"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "OK: usable for training" in res.stdout


DIGITS = Path(__file__).resolve().parents[2] / "fixtures" / "digits4"


def _train_labels(path: Path) -> list[int]:
    rows = [r for f in sorted(path.glob("train-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return [r["label"] for r in rows]


def test_class_folders_are_written_in_a_seeded_random_order(tmp_path: Path) -> None:
    """Real digits in class folders (40/13/32/13): the import is not grouped by class, the
    same seed writes the same order, and the check does not warn about the order."""
    a = import_class_folders(DIGITS, tmp_path / "a", image_size=32, mode="L", seed=3)
    import_class_folders(DIGITS, tmp_path / "b", image_size=32, mode="L", seed=3)
    import_class_folders(DIGITS, tmp_path / "c", image_size=32, mode="L", seed=4)
    labels = _train_labels(tmp_path / "a")
    shares = np.bincount(labels, minlength=4) / len(labels)
    expected = (len(labels) - 1) * (1 - (shares ** 2).sum())
    changes = sum(x != y for x, y in zip(labels, labels[1:]))
    assert changes > 0.7 * expected, (changes, expected)
    assert a.class_names == ("one", "three", "two", "zero")
    ids = [[r["image_id"] for r in _rows(tmp_path / d)] for d in "abc"]
    assert ids[0] == ids[1] and ids[0] != ids[2] and sorted(ids[0]) == sorted(ids[2])
    assert "label_order" not in check_dataset(tmp_path / "a").warnings.codes()


def test_check_warns_when_a_split_is_stored_grouped_by_label(tmp_path: Path) -> None:
    from tests.conftest import rewrite_dataset

    import_class_folders(DIGITS, tmp_path / "a", image_size=32, mode="L")
    rewrite_dataset(tmp_path / "a", tmp_path / "sorted", lambda name, t: t.sort_by("label"))
    report = check_dataset(tmp_path / "sorted")
    assert report.ok and "label_order" in report.warnings.codes()
    text = report.format()
    assert "3 label changes" in text and "fit.shuffle_buffer" in text and "random order gives about" in text
