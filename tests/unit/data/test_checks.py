"""``check``: each bad dataset gets a clear, located error; clean data passes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medsight_ray.data.checks import check_dataset
from medsight_ray.data.images import encode_png
from medsight_ray.errors import DataError
from tests.conftest import rewrite_dataset


def _edit_rows(fn: Callable[[list[dict]], list[dict]], only: str = "train") -> Callable[[str, pa.Table], pa.Table]:
    """Edit the rows of files whose name starts with ``only``, keeping the schema."""

    def edit(name: str, table: pa.Table) -> pa.Table:
        if not name.startswith(only):
            return table
        return pa.Table.from_pylist(fn(table.to_pylist()), schema=table.schema)

    return edit


def _first(fn: Callable[[dict], None]) -> Callable[[list[dict]], list[dict]]:
    def apply(rows: list[dict]) -> list[dict]:
        fn(rows[0])
        return rows

    return apply


def _set_box(**values: float) -> Callable[[list[dict]], list[dict]]:
    def apply(rows: list[dict]) -> list[dict]:
        row = next(r for r in rows if r["boxes"])
        row["boxes"][0].update(values)
        return rows

    return apply


def _absent_box(rows: list[dict]) -> list[dict]:
    row = next(r for r in rows if r["boxes"])
    row["concepts"][row["boxes"][0]["concept"]] = 0
    return rows


def _leak(name: str, table: pa.Table) -> pa.Table:
    if not name.startswith("val"):
        return table
    rows = table.to_pylist()
    rows[0]["patient_id"] = "P000000"  # the first synthetic patient, in train with seed 0
    return pa.Table.from_pylist(rows, schema=table.schema)


def _schema_edit(fn: Callable[[pa.Table], pa.Table]) -> Callable[[str, pa.Table], pa.Table]:
    return lambda name, table: fn(table)


BAD_CASES = {
    # name: (task, edit, expected code, words the message must contain)
    "missing_column": ("concepts", _schema_edit(lambda t: t.drop_columns(["targets"])), "missing_column",
                       ["'targets'", "train-00000.parquet"]),
    "wrong_dtype": ("grading", _schema_edit(lambda t: t.set_column(t.schema.get_field_index("label"), "label",
                                                                   t["label"].cast(pa.float64()))),
                    "wrong_dtype", ["'label'", "integer", "double"]),
    "undecodable_image": ("grading", _edit_rows(_first(lambda r: r.update(image=b"not a png"))),
                          "undecodable_image", ["row 0", "image_id eye", "'image'"]),
    "empty_dataset": ("grading", _schema_edit(lambda t: t.slice(0, 0)), "empty_dataset", ["no rows"]),
    "negative_label": ("concepts", _edit_rows(_first(lambda r: r["concepts"].__setitem__(2, -1))),
                       "label_value", ["'concepts'", "0 or 1", "-1"]),
    "null_label": ("concepts", _edit_rows(_first(lambda r: r["targets"].__setitem__(0, None))),
                   "null_label", ["'targets'"]),
    "label_length": ("concepts", _edit_rows(_first(lambda r: r.update(concepts=r["concepts"][:21]))),
                     "label_length", ["22 values", "21 values"]),
    "class_range": ("grading", _edit_rows(_first(lambda r: r.update(label=7))), "class_range",
                    ["0 <= label < 4", "7"]),
    "box_order": ("concepts", _edit_rows(_set_box(x_min=0.6, x_max=0.4)), "box_order", ["x_min < x_max"]),
    "box_range": ("concepts", _edit_rows(_set_box(y_max=1.7)), "box_range", ["[0, 1]", "1.7"]),
    "box_concept": ("concepts", _edit_rows(_set_box(concept=40)), "box_concept", ["0 <= concept < 22", "40"]),
    "box_for_absent": ("concepts", _edit_rows(_absent_box), "box_for_absent", ["marked absent"]),
    "mask_size": ("segmentation", _edit_rows(_first(lambda r: r.update(mask=encode_png(np.zeros((8, 8), np.uint8))))),
                  "mask_size", ["32x32", "8x8"]),
    "mask_not_binary": ("segmentation", _edit_rows(_first(lambda r: r.update(
        mask=encode_png(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32))))), "mask_not_binary", ["not binary"]),
    # Every val mask empty: Dice on val is 0/0 while the model predicts nothing.
    "no_val_foreground": ("segmentation", _edit_rows(
        lambda rows: [{**r, "mask": encode_png(np.zeros((32, 32), np.uint8))} for r in rows], only="val"),
                          "no_val_foreground", ["split 'val'", "0 of", "non-empty mask"]),
    "duplicate_id": ("grading", _edit_rows(lambda rows: [rows[0], {**rows[1], "image_id": rows[0]["image_id"]}]
                                           + rows[2:]), "duplicate_id", ["appears twice"]),
    "patient_leak": ("grading", _leak, "patient_leak", ["more than one split", "['train', 'val']"]),
    "bad_split": ("grading", _edit_rows(_first(lambda r: r.update(split="val"))), "bad_split", ["'train'", "'val'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_dataset_is_named_precisely(case: str, synth_dir, tmp_path: Path) -> None:
    task, edit, code, words = BAD_CASES[case]
    bad = rewrite_dataset(synth_dir(task, rows=60), tmp_path / case, edit)
    report = check_dataset(bad)
    assert not report.ok
    assert code in report.errors.codes(), report.format()
    text = report.format()
    for word in words:
        assert word in text, f"{word!r} missing from:\n{text}"
    with pytest.raises(DataError):
        report.raise_if_errors()


def test_clean_datasets_pass_with_a_balance_table(synth_dir) -> None:
    for task in ("concepts", "grading", "segmentation"):
        report = check_dataset(synth_dir(task, rows=120))
        assert report.ok, report.format()
        assert "OK: usable for training" in report.format()
        assert not {"identical_images", "blank_images"} & report.warnings.codes()
    grading = check_dataset(synth_dir("grading", rows=120)).format()
    assert "No Cataract" in grading and "IOL Inserted" in grading


def _gray_images(share: float) -> Callable[[list[dict]], list[dict]]:
    """Replace the image of the first ``share`` of the rows by one gray PNG (a broken
    decode that wrote the same image for every row)."""
    def apply(rows: list[dict]) -> list[dict]:
        gray = encode_png(np.full((32, 32), 128, dtype=np.uint8))
        for r in rows[:int(share * len(rows))]:
            r["image"] = gray
        return rows

    return apply


@pytest.mark.parametrize("only", ["train", ""])
def test_images_without_signal_in_most_rows_are_warned_about(only: str, synth_dir, tmp_path: Path) -> None:
    """One gray image for 70 % of the rows (of the train split, or of every split): both
    the byte-identical images and the single-value images are named, with the share and
    where the first one is; 30 % is a minority and draws neither."""
    src = synth_dir("grading", rows=120)
    report = check_dataset(rewrite_dataset(src, tmp_path / "most", _edit_rows(_gray_images(0.8), only)))
    assert {"identical_images", "blank_images"} <= report.warnings.codes(), report.format()
    text = report.format()
    assert "byte-identical images (the first at train-00000.parquet row 0" in text
    assert report.ok  # a warning: the dataset is still readable
    few = check_dataset(rewrite_dataset(src, tmp_path / "few", _edit_rows(_gray_images(0.3), only)))
    assert not {"identical_images", "blank_images"} & few.warnings.codes(), few.format()


def test_all_zero_column_no_val_and_wrong_task(synth_dir, tmp_path: Path) -> None:
    zero = check_dataset(synth_dir("concepts", rows=60, zero_label_column="Edema"))
    assert "all_zero_column" in zero.errors.codes() and "'Edema'" in zero.format()
    src = synth_dir("grading", rows=60)
    only_train = tmp_path / "only_train"
    only_train.mkdir()
    for f in src.glob("train-*.parquet"):
        (only_train / f.name).write_bytes(f.read_bytes())
    assert "no_val" in check_dataset(only_train).errors.codes()
    assert "wrong_task" in check_dataset(src, expect_task="segmentation").errors.codes()


def test_truncated_and_foreign_parquet_raise_named_errors(synth_dir, tmp_path: Path) -> None:
    src = synth_dir("grading", rows=60)
    (tmp_path / "t").mkdir()
    data = (src / "train-00000.parquet").read_bytes()
    (tmp_path / "t" / "train-00000.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated.*train-00000.parquet"):
        check_dataset(tmp_path / "t")
    (tmp_path / "f").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "f" / "train-00000.parquet")
    with pytest.raises(DataError, match="no medsight_ray metadata"):
        check_dataset(tmp_path / "f")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsight_ray.data", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_exit_codes_and_no_traceback(synth_dir, tmp_path: Path) -> None:
    ok = _cli("check", "--data", str(synth_dir("grading", rows=60)))
    assert ok.returncode == 0 and "OK: usable" in ok.stdout
    bad = rewrite_dataset(synth_dir("grading", rows=60), tmp_path / "bad", BAD_CASES["class_range"][1])
    res = _cli("check", "--data", str(bad))
    assert res.returncode == 2 and "class_range" in res.stdout and "Traceback" not in res.stdout + res.stderr
    missing = _cli("check", "--data", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    knob = _cli("synth", "--task", "grading", "--out", str(tmp_path / "k"), "--knob", "nope=1")
    assert knob.returncode == 2 and "unknown synthetic-data knob" in knob.stderr
    made = _cli("synth", "--task", "segmentation", "--out", str(tmp_path / "s"), "--rows", "30",
                "--image-size", "32")
    assert made.returncode == 0 and "OK: usable" in made.stdout
