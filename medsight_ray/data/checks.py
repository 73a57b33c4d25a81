"""Validate a dataset before any training.

Checks everything the seeds' ``check_dataloader.py`` and ``debug_masks.py`` did, and
more: schema and dtypes; that every image and mask decodes, with matching sizes; no
all-zero or all-one label column; valid boxes (inside [0, 1], min < max, concept in
range); label–box consistency; class balance; the share of empty masks; duplicate
image ids; a validation split; and no patient in two splits.

Errors make a dataset unusable and name file, column, row and image id, what was
expected and what came. Warnings (extreme imbalance, labels without boxes, many empty
masks) are reported but do not fail the check. The whole dataset streams through in
record batches, so checking needs no more memory than one batch.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from medsight_ray.data.images import decode_image
from medsight_ray.data.schema import SPLITS, DatasetInfo
from medsight_ray.data.store import DatasetFiles, iter_batches, list_dataset, read_footer, read_info
from medsight_ray.errors import DataError, redact

#: At most this many examples are kept per problem code; the count is kept in full.
EXAMPLES_PER_CODE = 5
#: A split whose label changes (row to row, in storage order) fall below this share of a
#: random order's expected count is reported as stored grouped by label.
ORDERED_FRACTION = 0.5
#: A class or concept rarer than this share of training rows is reported as extreme.
EXTREME_IMBALANCE = 0.01
#: More than this share of empty masks is reported (seed 004's loss -> 0 trap).
EMPTY_MASK_WARN = 0.5
#: Share of the rows above which one image (the same bytes), or images of a single pixel
#: value, draw a warning: the inputs of most rows carry no signal (a broken decode or
#: export writes one image for every row), and no model can learn from them.
NO_SIGNAL_WARN = 0.5


@dataclass(frozen=True)
class Problem:
    """One finding. ``where`` names file/column/row/image id."""

    code: str
    where: str
    message: str
    expected: str = ""
    got: str = ""

    def format(self) -> str:
        """One line: where, what, expected and got."""
        text = f"[{self.code}] {self.where}: {self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.got:
            text += f"; got {self.got}"
        return text


@dataclass
class Findings:
    """Problems of one severity, with per-code counts and a few examples each."""

    counts: Counter = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        """Count a problem; keep it as an example if its code has few so far."""
        self.counts[problem.code] += 1
        if self.counts[problem.code] <= EXAMPLES_PER_CODE:
            self.examples.append(problem)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def codes(self) -> set[str]:
        """The problem codes found."""
        return set(self.counts)


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    uri: str
    info: DatasetInfo | None
    errors: Findings = field(default_factory=Findings)
    warnings: Findings = field(default_factory=Findings)
    rows_per_split: dict[str, int] = field(default_factory=dict)
    patients_per_split: dict[str, int] = field(default_factory=dict)
    balance: list[tuple[str, dict[str, int]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the dataset is usable for training."""
        return not self.errors

    def format(self) -> str:
        """A readable report."""
        lines = [f"dataset {redact(self.uri)}"]
        if self.info is not None:
            lines.append(f"  task {self.info.task}, images {self.info.image_mode}, source: {self.info.source}")
        if self.rows_per_split:
            split_text = ", ".join(
                f"{s} {self.rows_per_split.get(s, 0)} rows / {self.patients_per_split.get(s, 0)} patients"
                for s in SPLITS if s in self.rows_per_split)
            lines.append(f"  {split_text}")
        if self.balance:
            splits = [s for s in SPLITS if s in self.rows_per_split]
            width = max(len(name) for name, _ in self.balance) + 2
            lines.append("")
            lines.append("  " + "label".ljust(width) + "".join(f"{s:>14}" for s in splits))
            for name, counts in self.balance:
                cells = []
                for s in splits:
                    n = max(self.rows_per_split.get(s, 0), 1)
                    cells.append(f"{counts.get(s, 0):>7} {100 * counts.get(s, 0) / n:5.1f}%")
                lines.append("  " + name.ljust(width) + "".join(cells))
        for title, findings in (("errors", self.errors), ("warnings", self.warnings)):
            if findings:
                lines.append("")
                total = sum(findings.counts.values())
                lines.append(f"{title}: {total} ({', '.join(f'{c} x{n}' for c, n in sorted(findings.counts.items()))})")
                lines.extend(f"  {p.format()}" for p in findings.examples)
        lines.append("")
        lines.append("OK: usable for training" if self.ok else "FAILED: fix the errors above before training")
        return "\n".join(lines)

    def raise_if_errors(self) -> None:
        """Raise a :class:`DataError` naming the first problems, if any."""
        if self.errors:
            first = self.errors.examples[0]
            more = sum(self.errors.counts.values()) - 1
            raise DataError(
                first.message, where=first.where, expected=first.expected, got=first.got,
                fix=(f"{more} more problem(s); " if more else "")
                + f"run 'python -m medsight_ray.data check --data {self.uri}' for the full report",
            )


def _is_int_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)


def _type_ok(column: str, t: pa.DataType) -> tuple[bool, str]:
    """Is arrow type ``t`` acceptable for ``column``? Returns (ok, expected text)."""
    if column in ("image_id", "patient_id", "split"):
        return pa.types.is_string(t) or pa.types.is_large_string(t), "string"
    if column in ("image", "mask"):
        return pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary (PNG bytes)"
    if column in ("concepts", "targets"):
        return _is_int_list(t), "list of integers (0/1)"
    if column == "label":
        return pa.types.is_integer(t), "integer class index"
    if column == "has_segmentation":
        return pa.types.is_boolean(t), "bool"
    if column == "boxes":
        ok = (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)
        if ok:
            names = {t.value_type.field(i).name for i in range(t.value_type.num_fields)}
            ok = {"concept", "x_min", "y_min", "x_max", "y_max"} <= names
        return ok, "list of struct{concept, x_min, y_min, x_max, y_max}"
    return True, ""


def _check_schema(files: DatasetFiles, info: DatasetInfo, report: CheckReport) -> bool:
    from medsight_ray.data.schema import required_columns

    ok = True
    for path in files.all_paths:
        schema, _ = read_footer(files, path)
        for column in required_columns(info.task):
            if column not in schema.names:
                report.errors.add(Problem("missing_column", f"{path} column '{column}'",
                                          "required column is missing",
                                          expected=f"columns {list(required_columns(info.task))}",
                                          got=f"columns {schema.names}"))
                ok = False
                continue
            type_ok, expected = _type_ok(column, schema.field(column).type)
            if not type_ok:
                report.errors.add(Problem("wrong_dtype", f"{path} column '{column}'", "wrong dtype",
                                          expected=expected, got=str(schema.field(column).type)))
                ok = False
    return ok


class _RowChecker:
    """Per-row checks and the statistics they accumulate."""

    def __init__(self, info: DatasetInfo, report: CheckReport) -> None:
        self.info = info
        self.report = report
        self.rows = Counter()
        self.patient_splits: dict[str, set[str]] = defaultdict(set)
        self.ids: set[str] = set()
        self.label_sums: dict[str, np.ndarray] = {}
        self.class_counts: dict[str, Counter] = defaultdict(Counter)
        self.empty_masks: Counter = Counter()
        # Labelled masks per split, and those with any foreground pixel.
        self.labelled_masks: Counter = Counter()
        self.foreground_masks: Counter = Counter()
        self.unlabelled = 0
        self.labels_without_box = 0
        # Storage order of the labels, per split: changes between consecutive rows and
        # the longest run of one label (see _label_order).
        self.last_label: dict[str, int] = {}
        self.label_changes: Counter = Counter()
        self.run: Counter = Counter()
        self.longest_run: Counter = Counter()
        # Rows per image content (a 16-byte digest of the stored bytes), and the rows whose
        # decoded image holds one pixel value: inputs without signal (_no_signal).
        self.digests: Counter = Counter()
        self.first_with: dict[bytes, str] = {}
        self.constant_images = 0

    def where(self, path: str, row: int, image_id: str, column: str = "") -> str:
        col = f" column '{column}'" if column else ""
        return f"{Path(path).name} row {row} (image_id {image_id}){col}"

    def row(self, path: str, index: int, rec: dict) -> None:
        image_id = str(rec.get("image_id"))
        split = rec.get("split")
        file_split = Path(path).name.split("-")[0]
        if split not in SPLITS or split != file_split:
            self.report.errors.add(Problem("bad_split", self.where(path, index, image_id, "split"),
                                           "split value does not match its file",
                                           expected=f"'{file_split}' (one of {list(SPLITS)})", got=repr(split)))
        split = file_split
        self.rows[split] += 1
        if image_id in self.ids:
            self.report.errors.add(Problem("duplicate_id", self.where(path, index, image_id, "image_id"),
                                           "image id appears twice", expected="unique image ids",
                                           got=f"{image_id!r} again"))
        self.ids.add(image_id)
        if rec.get("patient_id") in (None, ""):
            self.report.errors.add(Problem("missing_patient", self.where(path, index, image_id, "patient_id"),
                                           "patient id is empty", expected="a patient id",
                                           got=repr(rec.get("patient_id"))))
        else:
            self.patient_splits[rec["patient_id"]].add(split)
        image = self._decode(path, index, image_id, rec.get("image"), "image", self.info.image_mode)
        if image is not None:
            digest = hashlib.blake2b(rec["image"], digest_size=16).digest()
            self.digests[digest] += 1
            self.first_with.setdefault(digest, self.where(path, index, image_id, "image"))
            self.constant_images += int(image.min() == image.max())
        getattr(self, f"_{self.info.task}")(path, index, image_id, split, rec, image)

    def _decode(self, path: str, index: int, image_id: str, data: bytes | None, column: str,
                mode: str) -> np.ndarray | None:
        if data is None:
            self.report.errors.add(Problem("missing_image", self.where(path, index, image_id, column),
                                           "no bytes", expected="PNG bytes", got="null"))
            return None
        try:
            return decode_image(data, mode)
        except DataError as err:
            self.report.errors.add(Problem("undecodable_image", self.where(path, index, image_id, column),
                                           "bytes do not decode", expected="PNG or JPEG bytes", got=err.got))
            return None

    def _vector(self, path: str, index: int, image_id: str, rec: dict, column: str, names: tuple[str, ...],
                split: str) -> np.ndarray | None:
        values = rec.get(column)
        where = self.where(path, index, image_id, column)
        if values is None or any(v is None for v in values):
            self.report.errors.add(Problem("null_label", where, "label vector is null or holds nulls",
                                           expected=f"{len(names)} values of 0/1", got=repr(values)))
            return None
        if len(values) != len(names):
            self.report.errors.add(Problem("label_length", where, "label vector has the wrong length",
                                           expected=f"{len(names)} values ({column} names of the dataset)",
                                           got=f"{len(values)} values"))
            return None
        arr = np.asarray(values)
        if not np.isin(arr, (0, 1)).all():
            self.report.errors.add(Problem("label_value", where, "labels must be 0 or 1",
                                           expected="0/1", got=f"values {sorted(set(arr.tolist()) - {0, 1})}"))
            return None
        key = f"{column}:{split}"
        self.label_sums[key] = self.label_sums.get(key, np.zeros(len(names), dtype=np.int64)) + arr
        return arr

    def _concepts(self, path: str, index: int, image_id: str, split: str, rec: dict, image: object) -> None:
        concepts = self._vector(path, index, image_id, rec, "concepts", self.info.concept_names, split)
        self._vector(path, index, image_id, rec, "targets", self.info.target_names, split)
        boxed: set[int] = set()
        k_count = len(self.info.concept_names)
        for j, box in enumerate(rec.get("boxes") or []):
            where = self.where(path, index, image_id, f"boxes[{j}]")
            k = box.get("concept")
            coords = [box.get(c) for c in ("x_min", "y_min", "x_max", "y_max")]
            if k is None or not 0 <= k < k_count:
                self.report.errors.add(Problem("box_concept", where, "box concept index out of range",
                                               expected=f"0 <= concept < {k_count}", got=repr(k)))
                continue
            if any(c is None or not np.isfinite(c) for c in coords):
                self.report.errors.add(Problem("box_range", where, "box coordinate missing or not finite",
                                               expected="4 finite numbers", got=repr(coords)))
                continue
            x0, y0, x1, y1 = coords
            if min(coords) < 0 or max(coords) > 1:
                self.report.errors.add(Problem("box_range", where, "box outside the image",
                                               expected="coordinates normalised to [0, 1]",
                                               got=f"({x0:.3g}, {y0:.3g}, {x1:.3g}, {y1:.3g})"))
            elif not (x0 < x1 and y0 < y1):
                self.report.errors.add(Problem("box_order", where, "box min is not below max",
                                               expected="x_min < x_max and y_min < y_max",
                                               got=f"({x0:.3g}, {y0:.3g}, {x1:.3g}, {y1:.3g})"))
            if concepts is not None and concepts[k] == 0:
                self.report.errors.add(Problem("box_for_absent", where, "box for a concept marked absent",
                                               expected=f"concept {self.info.concept_names[k]!r} = 1 when it has a box",
                                               got="0"))
            boxed.add(int(k))
        if concepts is not None and set(np.flatnonzero(concepts).tolist()) - boxed:
            self.labels_without_box += 1

    def _grading(self, path: str, index: int, image_id: str, split: str, rec: dict, image: object) -> None:
        label = rec.get("label")
        n = len(self.info.class_names)
        if label is None or not 0 <= label < n:
            self.report.errors.add(Problem("class_range", self.where(path, index, image_id, "label"),
                                           "class index out of range", expected=f"0 <= label < {n} "
                                           f"({list(self.info.class_names)})", got=repr(label)))
            return
        self.class_counts[self.info.class_names[label]][split] += 1
        same = self.last_label.get(split) == label
        self.label_changes[split] += split in self.last_label and not same
        self.run[split] = self.run[split] + 1 if same else 1
        self.longest_run[split] = max(self.longest_run[split], self.run[split])
        self.last_label[split] = label

    def _segmentation(self, path: str, index: int, image_id: str, split: str, rec: dict,
                      image: np.ndarray | None) -> None:
        mask = self._decode(path, index, image_id, rec.get("mask"), "mask", "L")
        has = rec.get("has_segmentation")
        if has is None:
            self.report.errors.add(Problem("null_label", self.where(path, index, image_id, "has_segmentation"),
                                           "has_segmentation is null", expected="true/false", got="null"))
        elif not has:
            self.unlabelled += 1
        if mask is None:
            return
        if image is not None and mask.shape[:2] != image.shape[:2]:
            self.report.errors.add(Problem("mask_size", self.where(path, index, image_id, "mask"),
                                           "mask size differs from its image",
                                           expected=f"{image.shape[1]}x{image.shape[0]}",
                                           got=f"{mask.shape[1]}x{mask.shape[0]}"))
        values = np.unique(mask)
        if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
            self.report.errors.add(Problem("mask_not_binary", self.where(path, index, image_id, "mask"),
                                           "mask is not binary", expected="values {0, 255} (or {0, 1})",
                                           got=f"{len(values)} distinct values, e.g. {values[:5].tolist()}"))
        if has:
            self.labelled_masks[split] += 1
            self.foreground_masks[split] += bool(mask.any())
            self.empty_masks[split] += not mask.any()
        if has is False and mask.any():
            self.report.warnings.add(Problem("mask_without_flag", self.where(path, index, image_id, "mask"),
                                             "non-empty mask marked has_segmentation=false; it will be ignored"))

    def finish(self) -> None:
        report = self.report
        report.rows_per_split = {s: self.rows[s] for s in SPLITS if self.rows[s]}
        per_split = Counter(s for splits in self.patient_splits.values() for s in splits)
        report.patients_per_split = {s: per_split[s] for s in SPLITS if per_split[s]}
        if sum(self.rows.values()) == 0:
            report.errors.add(Problem("empty_dataset", report.uri, "dataset has no rows",
                                      expected="at least one train and one val row", got="0 rows"))
            return
        for split in ("train", "val"):
            if not self.rows[split]:
                report.errors.add(Problem(f"no_{split}", report.uri, f"no {split} rows",
                                          expected=f"a {split}-00000.parquet with rows",
                                          got=f"splits {dict(self.rows)}",
                                          ))
        leaks = sorted(p for p, s in self.patient_splits.items() if len(s) > 1)
        for pid in leaks:
            # The patient id itself is never printed: it may identify a person.
            report.errors.add(Problem("patient_leak", "column 'patient_id'",
                                      "a patient appears in more than one split",
                                      expected="every image of a patient in one split",
                                      got=f"patient #{sorted(self.patient_splits).index(pid)} in "
                                      f"{sorted(self.patient_splits[pid])}"))
        self._balance()
        self._no_signal()

    def _no_signal(self) -> None:
        """Warn when the images of most rows carry no signal: one image's exact bytes
        stored for most rows, or images of a single pixel value. A model fed them gives
        every image the same answer, whatever its learning rate; the health monitor then
        names ``outputs_ignore_input``, but this check finds it before any training."""
        rows = sum(self.digests.values())
        if not rows:
            return
        digest, same = self.digests.most_common(1)[0]
        if same > 1 and same / rows > NO_SIGNAL_WARN:
            self.report.warnings.add(Problem(
                "identical_images", "column 'image'",
                f"{same} of {rows} rows ({100 * same / rows:.0f}%) hold byte-identical images (the first at "
                f"{self.first_with[digest]}): their inputs carry no signal; check the decode or export that "
                "wrote them"))
        if self.constant_images / rows > NO_SIGNAL_WARN:
            self.report.warnings.add(Problem(
                "blank_images", "column 'image'",
                f"{self.constant_images} of {rows} rows ({100 * self.constant_images / rows:.0f}%) hold images of a "
                "single pixel value: their inputs carry no signal; check the window, the bit depth or the decode"))

    def _balance(self) -> None:
        info, report = self.info, self.report
        train_rows = max(self.rows["train"], 1)
        if info.task == "concepts":
            for column, names in (("concepts", info.concept_names), ("targets", info.target_names)):
                sums = {s: self.label_sums.get(f"{column}:{s}") for s in SPLITS}
                for i, name in enumerate(names):
                    counts = {s: int(v[i]) for s, v in sums.items() if v is not None}
                    report.balance.append((f"{column}: {name}", counts))
                    self._column_health(column, name, counts, train_rows)
            if self.labels_without_box:
                report.warnings.add(Problem("labels_without_boxes", "columns 'concepts'/'boxes'",
                                            f"{self.labels_without_box} rows have present concepts without a box; "
                                            "those concepts get no localisation loss"))
        elif info.task == "grading":
            for name in info.class_names:
                counts = dict(self.class_counts.get(name, {}))
                report.balance.append((name, counts))
                self._column_health("label", name, counts, train_rows, all_one_possible=False)
            self._label_order("train")
        else:
            labelled = sum(self.rows.values()) - self.unlabelled
            share = sum(self.empty_masks.values()) / max(labelled, 1)
            report.balance.append(("empty masks", dict(self.empty_masks)))
            if share > EMPTY_MASK_WARN:
                report.warnings.add(Problem("empty_masks", "column 'mask'",
                                            f"{100 * share:.0f}% of labelled masks are empty; BCE alone will "
                                            "learn to predict nothing (seed 004): use Dice or Tversky"))
            if labelled == 0:
                report.errors.add(Problem("no_masks", "column 'has_segmentation'", "no row has a segmentation",
                                          expected="some rows with has_segmentation=true", got="none"))
            elif self.unlabelled:
                report.warnings.add(Problem("unlabelled_rows", "column 'has_segmentation'",
                                            f"{self.unlabelled} rows have no segmentation; they are excluded "
                                            "from the loss, not treated as empty"))
            self._foreground()

    def _foreground(self) -> None:
        """An error for a train or val split whose labelled masks are all empty.

        Dice over a split with no foreground is 0/0 while the model predicts nothing and
        0 once it predicts anything: it cannot tell one epoch or trial from another, so
        no checkpoint or configuration can be chosen by it. A train split with no
        foreground teaches only "predict nothing".
        """
        for split in ("train", "val"):
            labelled = self.labelled_masks[split]
            if labelled and not self.foreground_masks[split]:
                self.report.errors.add(Problem(
                    f"no_{split}_foreground", f"split '{split}' column 'mask'",
                    f"no {split} mask has a foreground pixel, so Dice on it is undefined (0/0) or 0 in every "
                    "epoch", expected=f"at least one {split} row with a non-empty mask",
                    got=f"0 of {labelled} labelled {split} masks"))

    def _label_order(self, split: str) -> None:
        """Warn when ``split`` is stored grouped by label.

        In a random order the label changes between consecutive rows (n - 1)(1 - Σ p_k²)
        times on average (p_k the class shares); fewer than half of that means rows of a
        class are stored together. Training reads files in storage order through a local
        shuffle buffer and shuffles whole files, so such a split gives batches of one or
        two classes.
        """
        n = self.rows[split]
        shares = np.array([self.class_counts.get(c, {}).get(split, 0) for c in self.info.class_names]) / max(n, 1)
        expected = (n - 1) * (1 - float((shares ** 2).sum()))
        changes = self.label_changes[split]
        if expected >= 10 and changes < ORDERED_FRACTION * expected:
            self.report.warnings.add(Problem(
                "label_order", f"split '{split}' column 'label'",
                f"rows are stored grouped by label: {changes} label changes in {n} rows, where a random order "
                f"gives about {expected:.0f}; the longest run of one label is {self.longest_run[split]} rows. "
                "Training mixes rows only within the fit loop's local shuffle buffer (fit.shuffle_buffer, 256 rows "
                "by default) and shuffles whole files, so most batches would hold one or two classes and the run "
                "can diverge. Fix: write the rows in random order (python -m medsight_ray.data import does), or "
                f"set fit.shuffle_buffer above {self.longest_run[split]}"))

    def _column_health(self, column: str, name: str, counts: dict[str, int], train_rows: int,
                       all_one_possible: bool = True) -> None:
        n = counts.get("train", 0)
        where = f"column '{column}' label {name!r}"
        if n == 0:
            self.report.errors.add(Problem("all_zero_column", where, "never present in the train split",
                                           expected="at least one positive train row", got="0 positives"))
        elif all_one_possible and n == train_rows:
            self.report.errors.add(Problem("all_one_column", where, "present in every train row",
                                           expected="at least one negative train row", got=f"{n}/{train_rows}"))
        elif n / train_rows < EXTREME_IMBALANCE:
            self.report.warnings.add(Problem("extreme_imbalance", where,
                                             f"only {n}/{train_rows} train rows ({100 * n / train_rows:.2f}%)"))


def check_dataset(uri: str | Path, expect_task: str | None = None) -> CheckReport:
    """Validate the dataset at ``uri`` and return the report (never raises for bad rows).

    Args:
        uri: dataset directory or URI.
        expect_task: if given, a dataset of another task family is an error.

    Raises:
        DataError: the location holds no dataset, or its files are unreadable, so
            that nothing else can be checked.
    """
    files = list_dataset(uri)
    info = read_info(files)
    report = CheckReport(str(uri), info)
    if expect_task is not None and info.task != expect_task:
        report.errors.add(Problem("wrong_task", str(uri), "dataset is of another task family",
                                  expected=f"a {expect_task!r} dataset", got=f"a {info.task!r} dataset"))
        return report
    if not _check_schema(files, info, report):
        return report
    checker = _RowChecker(info, report)
    offsets: Counter = Counter()
    for path, batch in iter_batches(files):
        for rec in batch.to_pylist():
            checker.row(path, offsets[path], rec)
            offsets[path] += 1
    checker.finish()
    return report
