from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

Record = Dict[str, Any]

class Model:
    """One or several models loaded on a GPU."""

    weights: List[str]
    adapter: str
    families: List[str]
    def analyze(
        self,
        array: npt.NDArray[Union[np.uint8, np.uint16, np.float32, np.float64]],
        spacing: Optional[float] = None,
        name: str = "array",
    ) -> Record: ...
    def analyze_files(
        self, paths: Sequence[Union[str, PathLike[str]]], spacing: Optional[float] = None
    ) -> List[Record]: ...

def load(
    weights: Optional[Union[str, PathLike[str], Sequence[Union[str, PathLike[str]]]]] = None,
    model: str = "cervical",
    precision: str = "f32",
    adapter: Optional[str] = None,
) -> Model: ...

def parameter_units(family: str) -> List[tuple[str, List[str]]]: ...
