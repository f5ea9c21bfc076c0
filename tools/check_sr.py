"""Cross-checks sagitta's DICOM SRs with a third-party reader: highdicom parses each TID 1500
Measurement Report, and every measurement it finds (name, value, UCUM unit) must equal the JSON
record's, group by group (cervical, wholespine, lumbar, csm); pydicom counts the SCOORD points
against the record's landmarks. Not run by CI (it needs highdicom); see tools/README.md.

    sagitta analyze IMAGES.dcm --model all --dicom-out SR --out REC
    python3 tools/check_sr.py SR REC          # exit 0: every SR agrees with its record
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import highdicom as hd
import pydicom

UCUM = {"deg": "deg", "mm": "mm", "ratio": "{ratio}"}


def expected_groups(record: dict) -> dict[str, dict[str, tuple[float, str]]]:
    """Per group, the measurements the SR should hold: finite values with a UCUM unit."""
    groups: dict[str, dict[str, tuple[float, str]]] = {}

    def add(group: str, parameters: list[dict]):
        wanted = {}
        for p in parameters:
            if isinstance(p.get("value"), (int, float)) and p["unit"] in UCUM:
                wanted[p["name"]] = (float(p["value"]), UCUM[p["unit"]])
        groups[group] = wanted

    if record.get("model"):
        add("cervical", record["parameters"])
    for family in ("wholespine", "lumbar"):
        if record.get(family):
            add(family, record[family]["parameters"])
    if record.get("csm"):
        groups["csm"] = {"p_csm": (float(record["csm"]["p_csm"]), "1")}
    return groups


def landmark_count(record: dict) -> int:
    count = len(record.get("landmarks") or []) if record.get("model") else 0
    for family in ("wholespine", "lumbar"):
        if record.get(family):
            count += len(record[family]["landmarks"])
    return count


def check(sr_path: str, record: dict) -> list[str]:
    problems = []
    sr = hd.sr.srread(sr_path)
    found = {}
    for group in sr.content.get_image_measurement_groups():
        values = {}
        for m in group.get_measurements():
            values[m.name.value] = (float(m.value), m.unit.value)
        found[group.tracking_identifier] = values
    wanted = expected_groups(record)
    if list(found) != list(wanted):
        problems.append(f"groups {list(found)} != record's {list(wanted)}")
    for name, values in wanted.items():
        got = found.get(name, {})
        for parameter, (value, unit) in values.items():
            if parameter not in got:
                problems.append(f"{name}/{parameter}: missing")
            elif abs(got[parameter][0] - value) > 1e-6 or got[parameter][1] != unit:
                problems.append(f"{name}/{parameter}: SR {got[parameter]} != record {(value, unit)}")
        for parameter in set(got) - set(values):
            problems.append(f"{name}/{parameter}: in the SR, not in the record")
    points = 0
    stack = list(pydicom.dcmread(sr_path).ContentSequence)
    while stack:
        item = stack.pop()
        if item.ValueType == "SCOORD":
            points += 1
        stack.extend(getattr(item, "ContentSequence", []))
    if points != landmark_count(record):
        problems.append(f"{points} SCOORD points, the record has {landmark_count(record)} landmarks")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sr_dir")
    ap.add_argument("record_dir")
    args = ap.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.sr_dir, "*.sr.dcm")))
    if not paths:
        print(f"no *.sr.dcm in {args.sr_dir}", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        stem = os.path.basename(path)[: -len(".sr.dcm")]
        with open(os.path.join(args.record_dir, stem + ".json")) as f:
            record = json.load(f)
        problems = check(path, record)
        groups = ", ".join(expected_groups(record))
        if problems:
            failed += 1
            print(f"{path}: {len(problems)} problem(s)")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"{path}: highdicom agrees with the record ({groups}; "
                  f"{landmark_count(record)} points)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
