"""Import a grading dataset laid out as one folder per class.

    ROOT/No Cataract/img001.png
    ROOT/Mature Cataract/img002.jpg
    ...

Class names are the folder names, in ``classes`` order if given, else sorted.
"""

from __future__ import annotations

from pathlib import Path

from medsight_ray.data.images import encode_png, read_image_file, resize
from medsight_ray.data.importers.common import image_files, patient_from_name, write_items
from medsight_ray.data.location import Location
from medsight_ray.data.schema import DatasetInfo
from medsight_ray.errors import DataError


def import_class_folders(
    root: str | Path | Location,
    out: str | Path,
    classes: list[str] | None = None,
    image_size: int = 224,
    mode: str = "RGB",
    patient_regex: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    parallel: bool = False,
) -> DatasetInfo:
    """Write ``root``'s class folders (a local folder or a URI) as a ``grading`` dataset at ``out``."""
    root = Location.of(root)
    if not root.is_dir():
        raise DataError("class-folder root does not exist", where=str(root),
                        expected="a folder with one sub-folder per class", got="no such directory")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = classes or found
    missing = [c for c in names if c not in found]
    if missing or len(names) < 2:
        raise DataError("class folders do not match", where=str(root),
                        expected=f"at least two class folders, including {names}",
                        got=f"folders {found}" + (f", missing {missing}" if missing else ""))
    items: list[tuple[Location, int]] = []
    for index, name in enumerate(names):
        files = image_files(root / name)
        if not files:
            raise DataError("class folder holds no images", where=str(root / name),
                            expected="PNG, JPEG or DICOM files", got="none")
        items.extend((f, index) for f in files)
    info = DatasetInfo("grading", mode, class_names=tuple(names),
                       source=f"medsight_ray import folders {root}")

    def make_row(item: tuple[Location, int]) -> dict:
        path, label = item
        image = resize(read_image_file(path, mode), image_size)
        return {"image_id": f"{path.parent.name}/{path.stem}", "image": encode_png(image), "label": label}

    return write_items(out, info, items, lambda it: patient_from_name(it[0].stem, patient_regex),
                       make_row, val_fraction, test_fraction, seed, parallel, alias_patients=patient_regex is not None)
