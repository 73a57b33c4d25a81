"""Parquet layouts of the three task families, and the metadata that travels with them.

A dataset is a directory (or object-store prefix) of parquet files named
``{split}-NNNNN.parquet``, where ``split`` is ``train``, ``val`` or ``test``. Every row
also carries its ``split`` in a column, so a file is self-describing. Every file's
schema metadata holds a JSON :class:`DatasetInfo` under the key ``medsight_ray``: the
task, the class/concept/target names and the image mode travel with the data.

Columns common to all tasks:

    image_id    string   unique per row; the only identifier that may appear in logs
    patient_id  string   groups images of one patient; never logged
    split       string   train | val | test; one patient is never in two splits
    image       binary   PNG bytes, 8-bit, mode ``info.image_mode`` (L or RGB)

Task columns:

    concepts      concepts  list<int8>[K]  1 = concept present
                  targets   list<int8>[C]  1 = disease label present
                  boxes     list<struct<concept:int16, x_min, y_min, x_max, y_max: float32>>
                            normalised to [0, 1] of the image width/height
    grading       label     int64 class index into ``info.class_names``
    segmentation  mask      binary PNG bytes, mode L, 0 = background, 255 = foreground
                  has_segmentation  bool; False means the mask is unknown, not empty
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from medsight_ray.errors import DataError

TASKS: tuple[str, ...] = ("concepts", "grading", "segmentation")
SPLITS: tuple[str, ...] = ("train", "val", "test")
METADATA_KEY = b"medsight_ray"
LAYOUT_VERSION = 1

#: The 22 VinDr-CXR local findings, in the dataset's own order.
VINDR_CONCEPTS: tuple[str, ...] = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly",
    "Clavicle fracture", "Consolidation", "Edema", "Emphysema", "Enlarged PA",
    "ILD", "Infiltration", "Lung cavity", "Lung cyst", "Lung Opacity",
    "Mediastinal shift", "Nodule/Mass", "Pleural effusion", "Pleural thickening",
    "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion",
)
#: The 6 VinDr-CXR global labels.
VINDR_TARGETS: tuple[str, ...] = (
    "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "COPD", "No finding",
)
#: The cataract grader's four classes.
CATARACT_CLASSES: tuple[str, ...] = (
    "No Cataract", "Immature Cataract", "Mature Cataract", "IOL Inserted",
)

BOX_TYPE = pa.struct(
    [
        ("concept", pa.int16()),
        ("x_min", pa.float32()),
        ("y_min", pa.float32()),
        ("x_max", pa.float32()),
        ("y_max", pa.float32()),
    ]
)

_COMMON = [
    ("image_id", pa.string()),
    ("patient_id", pa.string()),
    ("split", pa.string()),
    ("image", pa.binary()),
]
_TASK_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "concepts": [
        ("concepts", pa.list_(pa.int8())),
        ("targets", pa.list_(pa.int8())),
        ("boxes", pa.list_(BOX_TYPE)),
    ],
    "grading": [("label", pa.int64())],
    "segmentation": [("mask", pa.binary()), ("has_segmentation", pa.bool_())],
}


@dataclass(frozen=True)
class DatasetInfo:
    """What travels with a dataset in every file's schema metadata.

    Attributes:
        task: one of :data:`TASKS`.
        image_mode: ``"L"`` (1 channel) or ``"RGB"`` (3 channels).
        concept_names: K concept names (task ``concepts``).
        target_names: C target names (task ``concepts``).
        class_names: class names (task ``grading``).
        max_boxes: most boxes on any one row (task ``concepts``); the pipeline pads to it.
        source: provenance, e.g. ``"synth seed=0"`` or the importer and its inputs.
    """

    task: str
    image_mode: str = "L"
    concept_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    max_boxes: int = 0
    source: str = ""
    version: int = LAYOUT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(
                "unknown task family", where="dataset metadata 'task'",
                expected=f"one of {', '.join(TASKS)}", got=repr(self.task),
            )
        if self.image_mode not in ("L", "RGB"):
            raise DataError(
                "unknown image mode", where="dataset metadata 'image_mode'",
                expected="'L' or 'RGB'", got=repr(self.image_mode),
            )

    @property
    def channels(self) -> int:
        """Number of image channels: 1 for ``L``, 3 for ``RGB``."""
        return 1 if self.image_mode == "L" else 3

    @property
    def num_outputs(self) -> int:
        """K concepts, the number of classes, or 1 mask channel."""
        if self.task == "concepts":
            return len(self.concept_names)
        if self.task == "grading":
            return len(self.class_names)
        return 1

    def schema(self) -> pa.Schema:
        """The arrow schema of this dataset's files, metadata included."""
        fields = [pa.field(n, t) for n, t in _COMMON + _TASK_COLUMNS[self.task]]
        return pa.schema(fields, metadata={METADATA_KEY: self.to_json().encode()})

    def to_json(self) -> str:
        """Serialise to JSON (lists for tuples)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "dataset metadata") -> DatasetInfo:
        """Parse :meth:`to_json` output; unknown keys are rejected by name."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(
                "dataset metadata is not valid JSON", where=where,
                expected="the JSON written by medsight_ray", got=str(err),
            ) from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DataError(
                "dataset metadata has unknown keys", where=where,
                expected=f"keys among {sorted(known)}", got=str(unknown),
            )
        for key in ("concept_names", "target_names", "class_names"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


def required_columns(task: str) -> dict[str, pa.DataType]:
    """Column name → arrow type that every file of ``task`` must have."""
    return dict(_COMMON + _TASK_COLUMNS[task])
