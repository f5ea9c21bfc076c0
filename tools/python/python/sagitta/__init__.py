"""sagitta from Python: load a model once, analyse numpy arrays and image files on the GPU.

Every result is the command line's JSON record (``sagitta analyze``) as Python data: the
landmarks with their confidences, the parameters with their units and quality statuses, the
findings and warnings. ``to_row`` flattens a record into one table row with one unit per
column, for pandas or pyarrow.

    >>> import sagitta, numpy as np
    >>> model = sagitta.load()                       # the shipped cervical default
    >>> record = model.analyze(np.zeros((512, 400), np.uint16), spacing=0.2)
    >>> records = model.analyze_files(["a.dcm", "b.png"])
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ._sagitta import Model, __version__, load, parameter_units

__all__ = ["Model", "load", "parameter_units", "columns", "schema", "to_row", "to_table", "__version__"]

# Where each landmark family's parameters are in a record, and the prefix of their columns.
_BLOCKS = {"cervical": ("", None), "wholespine": ("wholespine.", "wholespine"), "lumbar": ("lumbar.", "lumbar")}
_IDENTITY = [
    "image", "status", "error", "timestamp", "engine_version", "model", "weights_sha256",
    "study_instance_uid", "series_instance_uid", "sop_instance_uid", "width", "height", "facing",
]


def _families_of(record: Dict[str, Any]) -> List[str]:
    found = []
    if record.get("model"):
        found.append("cervical")
    for family in ("csm", "wholespine", "lumbar"):
        if record.get(family):
            found.append(family)
    return found


def columns(families: Sequence[str]) -> List[str]:
    """The columns ``to_row`` gives for these model families, the same for every record:
    identity, then per parameter one column per unit its values may have (``cSVA_mm`` and
    ``cSVA_px`` apart), its status and its reasons, the CSM screen, the warnings."""
    names = list(_IDENTITY)
    for family in families:
        if family in _BLOCKS:
            prefix = _BLOCKS[family][0]
            for name, units in parameter_units(family):
                names += [f"{prefix}{name}_{unit}" for unit in units]
                names += [f"{prefix}{name}_status", f"{prefix}{name}_reasons"]
    if "csm" in families:
        names += ["p_csm", "csm_label"]
    names.append("warnings")
    return names


def to_row(record: Dict[str, Any], families: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """One flat row of a record with ``columns(families)`` as keys (default: the families the
    record holds): a value goes in the column of its unit, so millimetres and pixels never
    share a column; what the record lacks (an error record's values) is None."""
    families = list(families) if families is not None else _families_of(record)
    row: Dict[str, Any] = dict.fromkeys(columns(families))
    dicom = record.get("dicom") or {}
    model = record.get("model") or {}
    row.update(
        image=record.get("image"),
        status=record.get("status"),
        error=record.get("error"),
        timestamp=record.get("timestamp"),
        engine_version=(record.get("engine") or {}).get("version"),
        model=model.get("name"),
        weights_sha256=model.get("sha256"),
        study_instance_uid=dicom.get("study_instance_uid"),
        series_instance_uid=dicom.get("series_instance_uid"),
        sop_instance_uid=dicom.get("sop_instance_uid"),
        width=record.get("width"),
        height=record.get("height"),
        facing=record.get("facing"),
    )
    for family in families:
        if family not in _BLOCKS:
            continue
        prefix, key = _BLOCKS[family]
        block = record if key is None else (record.get(key) or {})
        for parameter in block.get("parameters") or []:
            name = prefix + parameter["name"]
            value = parameter.get("value")
            column = f"{name}_{parameter['unit']}"
            if column not in row:
                raise ValueError(f"{column}: not a column of {families} (a newer record?)")
            row[column] = None if isinstance(value, float) and math.isnan(value) else value
            row[f"{name}_status"] = parameter.get("status")
            row[f"{name}_reasons"] = ",".join(parameter.get("reasons") or [])
    csm = record.get("csm")
    if csm and "csm" in families:
        row["p_csm"] = csm.get("p_csm")
        row["csm_label"] = csm.get("label")
    row["warnings"] = " | ".join(record.get("warnings") or [])
    return row


def schema(families: Sequence[str]):
    """The pyarrow schema of ``columns(families)``: every table of these families has it,
    whatever its rows (so tables of several batches or shards concatenate)."""
    import pyarrow as pa

    def kind(name: str):
        if name in ("width", "height"):
            return pa.int64()
        if name == "p_csm" or name.rsplit("_", 1)[-1] in ("deg", "mm", "px", "ratio"):
            return pa.float64()
        return pa.string()

    return pa.schema([(name, kind(name)) for name in columns(families)])


def to_table(records: Iterable[Dict[str, Any]], families: Optional[Sequence[str]] = None):
    """The records as a pyarrow Table, one row each, with ``schema(families)`` (default: the
    families of the first analysed record)."""
    import pyarrow as pa

    records = list(records)
    if families is None:
        families = next((_families_of(r) for r in records if r.get("status") != "error"), [])
    rows = [to_row(record, families) for record in records]
    table_schema = schema(families)
    return pa.table({name: [row[name] for row in rows] for name in table_schema.names}, schema=table_schema)
