"""``python -m medsight_ray.data``: synthesise, check and import datasets.

    synth  --task T [--out DIR] [--rows N] [--image-size S] [--seed N] [--knob name=value ...]
    check  --data URI [--task T]
    dryrun --data URI [--workers N] [--address ADDR]
    import vindr   --csv FILE --images DIR [--out DIR] [--seed N] [--address ADDR | --serial] [...]
    import folders --root DIR [--out DIR] [--seed N] [--address ADDR | --serial] [...]
    import pairs   --images DIR --masks DIR [--out DIR] [--seed N] [--address ADDR | --serial] [...]

An import's FILE and DIR inputs, and its ``--out``, may be ``s3://``, ``gs://`` or
``file://`` URIs as well as local paths.

The flags are the grammar every entry point shares (:mod:`medsight_ray.flags`): ``--out``
is the dataset written (default ``medsight_results/data-<time>``), ``--seed`` seeds
everything random (the synthetic draw and the patient split). Exit codes: 0 success,
2 bad input (with a message naming what and where).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medsight_ray import flags
from medsight_ray.data.checks import check_dataset
from medsight_ray.errors import exit_on_error
from medsight_ray.raylocal import set_local_env


def _writes(p: argparse.ArgumentParser) -> None:
    """The flags of a command that writes a dataset: where, the split, the seed."""
    flags.add(p, "--out", out={"help": "dataset directory or URI to write (default medsight_results/data-<time>)"})
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of patients for validation")
    p.add_argument("--test-fraction", type=float, default=0.0, help="share of patients for test")
    flags.add(p, "--seed")


def _decodes(p: argparse.ArgumentParser) -> None:
    """The flags of an import: where its images are decoded."""
    flags.add(p, "--address", "--verbose")
    p.add_argument("--serial", action="store_true",
                   help="decode in this process, one image after another, without Ray (default: in parallel with "
                        "Ray Data on every core of the cluster; the output is the same, row for row)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and docs."""
    parser = argparse.ArgumentParser(prog="python -m medsight_ray.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a learnable synthetic dataset")
    flags.add(synth, "--task", task={"required": True})
    synth.add_argument("--rows", type=int, default=1000)
    synth.add_argument("--image-size", type=int, default=64)
    synth.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                       help="pathology knob, e.g. empty_mask_fraction=0.9 (see medsight_ray.data.synth.Knobs)")
    _writes(synth)

    check = sub.add_parser("check", help="validate a dataset before training")
    flags.add(check, "--data", data={"required": True})
    flags.add(check, "--task", task={"help": "fail unless the dataset is of this task family"})

    dry = sub.add_parser("dryrun", help="stream a dataset through Ray Train workers without a model")
    flags.add(dry, "--data", data={"required": True})
    flags.add(dry, "--workers", workers={"help": "Train workers streaming the data (default 2)"})
    dry.add_argument("--epochs", type=int, default=1)
    dry.add_argument("--batch-size", type=int, default=32)
    dry.add_argument("--image-size", type=int, default=64)
    flags.add(dry, "--address")

    imp = sub.add_parser("import", help="convert a real dataset layout")
    kinds = imp.add_subparsers(dest="kind", required=True)
    vindr = kinds.add_parser("vindr", help="VinDr-CXR CSV + PNG/DICOM images -> concepts")
    vindr.add_argument("--csv", required=True, metavar="FILE|URI", help="the annotations CSV")
    vindr.add_argument("--images", required=True, metavar="DIR|URI", help="the folder of PNG/DICOM images")
    vindr.add_argument("--image-size", type=int, default=512)
    vindr.add_argument("--min-votes", type=int, default=1, help="radiologists needed to keep a finding")
    vindr.add_argument("--iou", type=float, default=0.4, help="IoU to merge boxes of different radiologists")
    vindr.add_argument("--image-labels", metavar="FILE|URI", help="VinDr image_labels CSV for the global labels")
    vindr.add_argument("--sizes", metavar="FILE|URI", help="CSV image_id,width,height of the original images")
    vindr.add_argument("--concepts", default="observed",
                       help="'observed' (VinDr findings in the CSV), 'vindr22', or a comma-separated list")
    vindr.add_argument("--skip-missing", action="store_true", help="import only images present (counted)")
    _writes(vindr)
    _decodes(vindr)
    folders = kinds.add_parser("folders", help="one folder per class -> grading")
    folders.add_argument("--root", required=True, metavar="DIR|URI", help="the folder of class folders")
    folders.add_argument("--classes", help="comma-separated class order (default: sorted folder names)")
    folders.add_argument("--image-size", type=int, default=224)
    folders.add_argument("--mode", choices=("L", "RGB"), default="RGB")
    folders.add_argument("--patient-regex", help="regex whose group 1 is the patient id in a file name")
    _writes(folders)
    _decodes(folders)
    pairs = kinds.add_parser("pairs", help="image/mask pairs -> segmentation")
    pairs.add_argument("--images", required=True, metavar="DIR|URI", help="the folder of images")
    pairs.add_argument("--masks", required=True, metavar="DIR|URI", help="the folder of masks (same file names)")
    pairs.add_argument("--image-size", type=int, default=128)
    pairs.add_argument("--mode", choices=("L", "RGB"), default="L")
    pairs.add_argument("--patient-regex", help="regex whose group 1 is the patient id in a file name")
    pairs.add_argument("--allow-missing-masks", action="store_true",
                       help="import images without a mask as has_segmentation=false (counted)")
    _writes(pairs)
    _decodes(pairs)
    return parser


#: Each import's inputs: flag destination -> a folder (True) or a file (False).
INPUTS = {"vindr": {"csv": False, "images": True, "image_labels": False, "sizes": False},
          "folders": {"root": True}, "pairs": {"images": True, "masks": True}}


def check_inputs(args: argparse.Namespace) -> None:
    """Every input of the import is there (local or on object storage) and a patient
    regex compiles, before Ray starts.

    Raises:
        DataError: an input is missing or of the wrong kind; names its flag and location.
    """
    import pyarrow.fs as pafs

    from medsight_ray.data.location import Location
    from medsight_ray.errors import DataError

    if getattr(args, "patient_regex", None) is not None:
        from medsight_ray.data.importers.common import compile_patient_regex

        compile_patient_regex(args.patient_regex)
    kinds = {pafs.FileType.Directory: "a folder", pafs.FileType.File: "a file"}
    for dest, folder in INPUTS[args.kind].items():
        where = getattr(args, dest)
        if where is None:
            continue
        location = Location.of(where)
        wanted, found = "a folder" if folder else "a file", kinds.get(location.type(), "nothing there")
        if found != wanted:
            flag = "--" + dest.replace("_", "-")
            raise DataError(f"{flag} names no {wanted[2:]}", where=f"{flag} {location}", expected=wanted, got=found)


def _run_import(args: argparse.Namespace) -> str:
    """Run the import; unless ``--serial``, its images are decoded on Ray (joined or local)."""
    check_inputs(args)
    if args.serial:
        return _import(args)
    import tempfile

    from medsight_ray import console
    from medsight_ray.raylocal import ray_for_run

    # Ray's own output goes to a log beside, not into, the dataset being written.
    with console.session(Path(tempfile.mkdtemp(prefix="medsight_import_")), args.verbose) as log, \
            ray_for_run(args.address, log):
        return _import(args)


def _import(args: argparse.Namespace) -> str:
    split = {"val_fraction": args.val_fraction, "test_fraction": args.test_fraction, "seed": args.seed or 0,
             "parallel": not args.serial}
    if args.kind == "vindr":
        from medsight_ray.data.importers.vindr import import_vindr
        from medsight_ray.data.schema import VINDR_CONCEPTS

        concepts = {"observed": None, "vindr22": VINDR_CONCEPTS}.get(args.concepts)
        if args.concepts not in ("observed", "vindr22"):
            concepts = tuple(c.strip() for c in args.concepts.split(","))
        info, counts = import_vindr(args.csv, args.images, args.out, args.image_size, args.min_votes, args.iou,
                                    args.image_labels, args.sizes, args.skip_missing, **split,
                                    concept_names=concepts)
        return (f"imported {counts['images']} images with {counts['boxes']} merged boxes"
                + (f"; skipped {counts['skipped_missing']} images missing from {args.images}"
                   if counts["skipped_missing"] else ""))
    if args.kind == "folders":
        from medsight_ray.data.importers.folders import import_class_folders

        classes = args.classes.split(",") if args.classes else None
        info = import_class_folders(args.root, args.out, classes, args.image_size, args.mode,
                                    args.patient_regex, **split)
        return f"imported classes {list(info.class_names)}"
    from medsight_ray.data.importers.pairs import import_pairs

    info = import_pairs(args.images, args.masks, args.out, args.image_size, args.mode, args.patient_regex,
                        args.allow_missing_masks, **split)
    return f"imported image/mask pairs ({info.source})"


def _run_dryrun(args: argparse.Namespace) -> int:
    from medsight_ray.data.dryrun import dry_run
    from medsight_ray.data.pipeline import PipelineConfig
    from medsight_ray.raylocal import init_ray

    report = check_dataset(args.data)
    report.raise_if_errors()
    init_ray(args.address)
    history = dry_run(args.data, args.workers or 2, args.epochs, args.batch_size,
                      PipelineConfig(image_size=args.image_size))
    print(f"{'epoch':>5} {'split':>6} {'rows':>7} {'unique':>7} {'per worker':>16} {'rows/s':>9}")
    for epoch in history:
        for split in ("train", "val"):
            print(f"{epoch['epoch']:>5} {split:>6} {epoch[f'{split}/rows']:>7} {epoch[f'{split}/unique']:>7} "
                  f"{str(epoch[f'{split}/per_worker']):>16} {epoch[f'{split}/rows_per_s']:>9.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Before anything imports ray: local Ray then binds every listener to 127.0.0.1.
    set_local_env()
    args = build_parser().parse_args(argv)
    if args.command in ("synth", "import"):
        args.out = flags.out_location(args, "data")
    if args.command == "dryrun":
        return _run_dryrun(args)
    if args.command == "synth":
        from medsight_ray.data.synth import Knobs, synthesize

        synthesize(args.task, args.out, args.rows, args.image_size, args.seed or 0, Knobs.from_pairs(args.knob),
                   args.val_fraction, args.test_fraction)
        print(f"wrote synthetic {args.task} dataset to {args.out}")
    elif args.command == "import":
        print(_run_import(args))
    if args.command in ("synth", "import"):
        target, task = args.out, None
    else:
        target, task = args.data, args.task
    report = check_dataset(target, expect_task=task)
    print(report.format())
    # A synthetic dataset with pathology knobs is meant to fail the check; writing it
    # still succeeded.
    return 0 if report.ok or args.command == "synth" else 2


cli = exit_on_error(main)

if __name__ == "__main__":
    cli()
