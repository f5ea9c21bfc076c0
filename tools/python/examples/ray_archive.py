"""Analyse an archive with Ray Data: one sagitta model per actor, Parquet out.

    python ray_archive.py INPUT... --out results.parquet [--actors N] [--gpus-per-actor 1]
        [--model cervical] [--weights FILE] [--batch-size 8] [--address auto]

INPUT is a folder (searched for images), an image, or a manifest (a .txt file with one path
per line). Each actor loads the model once on its GPU (``num_gpus`` per actor; on a CPU-only
cluster use --gpus-per-actor 0 and one actor per group of cores: each then runs lavapipe) and
analyses batches of paths with ``Model.analyze_files``, which decodes the next file while the
GPU works. Every row has the same columns (``sagitta.columns``): one unit per column, error
records as rows with status "error". The output is a Parquet dataset (a folder of files).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List, Optional

import pyarrow as pa
import ray

import sagitta

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".dic", ".ima", ""}


def list_inputs(inputs: List[str]) -> List[str]:
    """The image paths named by folders, files and manifests, in a stable order."""
    paths: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(
                str(p)
                for p in path.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.suffix.lower() == ".txt":
            lines = path.read_text().splitlines()
            paths += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        else:
            paths.append(str(path))
    return paths


class Analyse:
    """A Ray actor: the model is loaded once, then every batch runs on it."""

    def __init__(self, model: str, weights: Optional[str]):
        self.model = sagitta.load(weights, model=model)
        self.families = self.model.families

    def __call__(self, batch: pa.Table) -> pa.Table:
        records = self.model.analyze_files(batch["path"].to_pylist())
        return sagitta.to_table(records, self.families)


def run(
    inputs: List[str],
    out: str,
    actors: int = 1,
    gpus_per_actor: float = 0.0,
    model: str = "cervical",
    weights: Optional[str] = None,
    batch_size: int = 8,
) -> int:
    """Analyses the inputs into the Parquet dataset `out`; returns the number of rows."""
    paths = list_inputs(inputs)
    if not paths:
        raise SystemExit("no images in the inputs")
    dataset = ray.data.from_items([{"path": path} for path in paths])
    results = dataset.map_batches(
        Analyse,
        fn_constructor_kwargs={"model": model, "weights": weights},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus_per_actor,
    )
    results.write_parquet(out)
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--gpus-per-actor", type=float, default=0.0)
    parser.add_argument("--model", default="cervical")
    parser.add_argument("--weights")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--address", help="a running cluster (e.g. auto); default: a local one")
    args = parser.parse_args()
    ray.init(address=args.address, num_cpus=None if args.address else os.cpu_count())
    count = run(args.inputs, args.out, args.actors, args.gpus_per_actor, args.model, args.weights, args.batch_size)
    print(f"{count} image(s) analysed into {args.out}")


if __name__ == "__main__":
    main()
