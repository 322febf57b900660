from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str
FORMAT_VERSION: int

class GretaError(Exception):
    """An error from greta: the tape, the model file or the recorder."""

class Weight:
    name: str
    def __init__(self, name: str) -> None: ...

class Raw:
    data: npt.NDArray[np.uint8]
    dtype: str
    shape: List[int]
    def __init__(self, data: Union[bytes, bytearray, memoryview, npt.ArrayLike], dtype: str, shape: List[int]) -> None: ...

def weight(name: str) -> Weight:
    """An input that is the GGUF weight ``name`` (referenced by name, never copied)."""

def raw(data: Union[bytes, bytearray, memoryview, npt.ArrayLike], dtype: str, shape: List[int]) -> Raw:
    """Raw little-endian bytes of greta dtype ``dtype`` (f32 f64 f16 bf16 i32 q8_0 q4_0 q4_1 q4_k q6_k q5_0 q5_1 q2_k q3_k q5_k iq4_nl iq4_xs)."""

TensorLike = Union[npt.ArrayLike, Raw, Any]  # Any: torch.Tensor
InputLike = Union[TensorLike, Weight]

class Recorder:
    """Records another engine's kernel launches to a greta tape. Thread-safe; a context manager."""

    path: str
    def __init__(
        self,
        path: str,
        engine: str,
        engine_version: str = "",
        model: Optional[Mapping[str, Any]] = None,
        device: str = "",
        prompt_tokens: Optional[List[int]] = None,
        sync: bool = False,
    ) -> None: ...
    def begin(
        self,
        *,
        phase: str,
        layer: Optional[int],
        stage: str,
        route: str,
        op: Optional[str] = None,
        params: Optional[Mapping[str, float]] = None,
        inputs: Optional[Mapping[str, InputLike]] = None,
        input_ids: Optional[Mapping[str, int]] = None,
    ) -> int:
        """Writes a launch's Begin record; returns its seq."""
    def end(
        self,
        seq: int,
        outputs: Optional[Mapping[str, TensorLike]] = None,
        output_ids: Optional[Mapping[str, int]] = None,
    ) -> Dict[str, int]:
        """Writes launch ``seq``'s End record; returns {role: tensor id}."""
    def launch(
        self,
        *,
        phase: str,
        layer: Optional[int],
        stage: str,
        route: str,
        op: Optional[str] = None,
        params: Optional[Mapping[str, float]] = None,
        inputs: Optional[Mapping[str, InputLike]] = None,
        outputs: Optional[Mapping[str, TensorLike]] = None,
        input_ids: Optional[Mapping[str, int]] = None,
        output_ids: Optional[Mapping[str, int]] = None,
    ) -> Dict[str, int]:
        """Records a whole launch; returns {role: tensor id} of its outputs."""
    def close(self) -> Dict[str, Any]:
        """Completes the tape; returns {"launches", "fingerprint", "path"}."""
    def __enter__(self) -> "Recorder": ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

class Tape:
    """A greta tape opened for reading."""

    header: Dict[str, Any]
    version: int
    def __init__(self, path: str, model: Optional[str] = None) -> None: ...
    def __len__(self) -> int: ...
    def launch(self, seq: int) -> Dict[str, Any]: ...
    def launches(
        self, phase: Optional[str] = None, layer: Optional[int] = None, stage: Optional[str] = None
    ) -> List[Dict[str, Any]]: ...
    def inputs(self, seq: int) -> Dict[str, np.ndarray]: ...
    def outputs(self, seq: int) -> Dict[str, np.ndarray]: ...

def open(path: str, model: Optional[str] = None) -> Tape:
    """Opens a tape for reading."""
