"""How fast does ``data import`` decode real DICOMs, serially and with Ray Data?

    python bench/import_speed.py [--dicom ../shared/realdata/cxr_dicom/RG1_UNCR.dcm]
                                 [--copies 48] [--size 512] [--out bench/results/import_speed.json]

The real chest CR DICOM (7.2 MB, 16-bit) is copied ``--copies`` times into two class
folders and imported with ``python -m medsight_ray.data import folders`` three ways, each
in a fresh process: ``--serial`` (one process, the reference), in parallel on a local Ray
this process starts (every core of this machine), and in parallel on a local multi-node
cluster (:mod:`medsight_ray.localcluster`, a head and two worker nodes on the same
cores: it adds no cores, so it shows correctness, not speed). Reported: wall seconds,
the decode rate of the importer's last progress line (images/s, Ray's start-up
excluded), and whether the dataset's files equal the serial import's byte for byte.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsight_ray.localcluster import LocalCluster, NodeSpec  # noqa: E402


def _import(root: Path, out: Path, size: int, extra: list[str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medsight_ray.data", "import", "folders", "--root", str(root),
                           "--out", str(out), "--image-size", str(size), "--mode", "L", *extra],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    rates = re.findall(r"decoded (\d+)/(\d+) images \(([\d.]+)/s\)", done.stdout + done.stderr)
    return {"wall_s": round(wall, 1), "images_per_s": float(rates[-1][2]) if rates else None}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dicom", type=Path, default=ROOT.parent / "shared/realdata/cxr_dicom/RG1_UNCR.dcm")
    p.add_argument("--copies", type=int, default=48)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/import_speed.json")
    args = p.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "classes"
        for index in range(args.copies):
            folder = root / ("normal" if index % 2 else "abnormal")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(args.dicom, folder / f"cr_{index:04d}.dcm")
        rows["serial"] = _import(root, Path(tmp) / "serial", args.size, ["--serial"])
        rows["ray_local"] = _import(root, Path(tmp) / "ray_local", args.size, [])
        with LocalCluster(head_cpus=1, object_store_mb=256) as cluster:
            for name in ("worker-1", "worker-2"):
                cluster.add_node(NodeSpec(name, cpus=1, object_store_mb=256))
            rows["ray_3_nodes"] = _import(root, Path(tmp) / "ray_3_nodes", args.size, ["--address", cluster.address])
        reference = _files(Path(tmp) / "serial")
        for arm in rows:
            rows[arm]["identical_to_serial"] = _files(Path(tmp) / arm) == reference
    base = rows["serial"]["images_per_s"] or 1.0
    print(f"\n{args.copies} copies of {args.dicom.name} at {args.size} px")
    print(f"{'arm':<14} {'wall s':>7} {'images/s':>9} {'x serial':>9} {'identical':>10}")
    for arm, r in rows.items():
        speed = r["images_per_s"] or 0.0
        print(f"{arm:<14} {r['wall_s']:>7} {speed:>9.2f} {speed / base:>9.2f} {str(r['identical_to_serial']):>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"copies": args.copies, "size": args.size, "dicom": str(args.dicom),
                                    "arms": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
