"""The Ray Data pipeline on a local Ray instance: the samples and the shared NEMA DICOMs
(when ../shared/dicom is there) through two lavapipe actors into Parquet, which must hold
the command line's records, row for row."""

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import sagitta

ray = pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
import ray_archive  # noqa: E402
from test_sagitta import REPOSITORY, SAMPLES, cli_records  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    # The actors import the example's module as this process does.
    path = os.pathsep.join([str(HERE.parent / "examples"), str(HERE)])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


def test_parquet_from_ray_equals_the_command_lines_records(local_ray, tmp_path):
    inputs = [str(SAMPLES / name) for name in ("phantom_right.png", "phantom_left.png", "phantom_dicom.dcm")]
    shared = REPOSITORY.parent / "shared" / "dicom"
    if shared.is_dir():
        inputs += [str(shared / name) for name in ("RG2_UNC", "RG3_J2KR")]
    out = tmp_path / "results.parquet"
    count = ray_archive.run(inputs, str(out), actors=2, gpus_per_actor=0, batch_size=2)
    assert count == len(inputs)
    table = pq.read_table(out)
    assert sorted(table.column_names) == sorted(sagitta.columns(["cervical"]))
    rows = {row["image"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted(inputs)
    for record in cli_records(inputs):
        expected = sagitta.to_row(record, ["cervical"])
        got = rows[record["image"]]
        for column, value in expected.items():
            if column == "timestamp":
                continue
            assert got[column] == value, (record["image"], column)
