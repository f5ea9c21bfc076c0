"""The Python package against the command line on the shipped samples: the same weights and
inputs give the same landmarks and parameters. Needs the `sagitta` binary (SAGITTA_BIN, else
the repository's target/release/sagitta, as `cargo build --release` leaves it)."""

import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import sagitta

REPOSITORY = Path(__file__).resolve().parents[3]
SAMPLES = REPOSITORY / "samples"
FIXTURE = REPOSITORY / "tests" / "fixtures" / "cervical_small_f32.safetensors"


def cli_records(paths, *extra):
    binary = os.environ.get("SAGITTA_BIN", str(REPOSITORY / "target" / "release" / "sagitta"))
    output = subprocess.run(
        [binary, "analyze", *map(str, paths), "--quiet", *extra],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SAGITTA_") or k == "SAGITTA_BIN"},
    )
    return json.loads(output.stdout)


def same_results(ours, theirs):
    assert ours["status"] == theirs["status"]
    assert ours["landmarks"] == theirs["landmarks"]
    assert ours["parameters"] == theirs["parameters"]
    assert ours["findings"] == theirs["findings"]
    assert ours["model"] == theirs["model"]


@pytest.fixture(scope="module")
def default_model():
    return sagitta.load()


def test_files_give_the_command_lines_records(default_model):
    paths = [SAMPLES / "phantom_right.png", SAMPLES / "phantom_dicom.dcm"]
    ours = default_model.analyze_files(paths)
    theirs = cli_records(paths)
    assert len(ours) == len(theirs) == 2
    for mine, cli in zip(ours, theirs):
        assert mine["image"] == cli["image"]
        same_results(mine, cli)
    assert ours[1]["distance_unit"] == "mm"


def test_a_numpy_array_gives_the_records_of_its_png(default_model):
    from PIL import Image

    picture = Image.open(SAMPLES / "phantom_right.png")
    array = np.asarray(picture)
    assert array.ndim == 2 and array.dtype in (np.uint8, np.uint16)
    ours = default_model.analyze(array, name="phantom")
    theirs = cli_records([SAMPLES / "phantom_right.png"])[0]
    assert ours["image"] == "phantom"
    same_results(ours, theirs)
    # f32 of the same values is the same image; a spacing gives millimetres.
    floats = default_model.analyze(array.astype(np.float32), spacing=0.2)
    assert floats["landmarks"] == ours["landmarks"]
    assert floats["distance_unit"] == "mm"
    assert {p["unit"] for p in floats["parameters"]} == {"deg", "mm"}


def test_bad_input_raises_or_gives_an_error_record(default_model, tmp_path):
    with pytest.raises(ValueError):
        default_model.analyze(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        default_model.analyze(np.full((64, 64), np.nan, np.float32))
    with pytest.raises(ValueError):
        default_model.analyze(np.zeros((64, 64), np.uint8), spacing=-1.0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    records = default_model.analyze_files([broken, SAMPLES / "phantom_left.png"])
    assert records[0]["status"] == "error" and "broken.png" in records[0]["error"]
    assert records[1]["status"] in ("ok", "flagged")
    with pytest.raises(RuntimeError):
        sagitta.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError):
        sagitta.load(model="knee")


def test_the_gil_is_released_while_the_gpu_works():
    model = sagitta.load(FIXTURE)
    image = np.random.default_rng(0).integers(0, 4096, (900, 700), dtype=np.uint16)
    done = threading.Event()
    counted = 0

    def analyse():
        for _ in range(3):
            model.analyze(image)
        done.set()

    worker = threading.Thread(target=analyse)
    worker.start()
    while not done.is_set():
        counted += 1
    worker.join()
    # With the GIL held through the analysis this loop would barely run.
    assert counted > 10_000, counted


def test_rows_put_each_unit_in_its_own_column(default_model):
    from_png = default_model.analyze_files([SAMPLES / "phantom_right.png"])[0]
    from_dicom = default_model.analyze_files([SAMPLES / "phantom_dicom.dcm"])[0]
    assert from_png["distance_unit"] == "px" and from_dicom["distance_unit"] == "mm"
    png_row, dicom_row = sagitta.to_row(from_png), sagitta.to_row(from_dicom)
    assert list(png_row) == list(dicom_row) == sagitta.columns(["cervical"])
    assert png_row["cSVA_px"] is not None and png_row["cSVA_mm"] is None
    assert dicom_row["cSVA_mm"] is not None and dicom_row["cSVA_px"] is None
    table = sagitta.to_table([from_png, from_dicom])
    assert table.num_rows == 2 and table.column_names == sagitta.columns(["cervical"])
    for record in (from_png, from_dicom):
        for parameter in record["parameters"]:
            assert f"{parameter['name']}_{parameter['unit']}" in table.column_names


def test_every_family_loads_and_its_parameters_have_columns():
    model = sagitta.load(model="all")
    assert model.families == ["cervical", "csm", "wholespine"]
    record = model.analyze_files([SAMPLES / "wholespine_dicom.dcm"])[0]
    row = sagitta.to_row(record)
    assert row["p_csm"] is not None
    for parameter in record["wholespine"]["parameters"]:
        assert f"wholespine.{parameter['name']}_{parameter['unit']}" in row
