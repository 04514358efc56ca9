"""Export target profiles: the YAML files in the top-level ``export/`` folder (``export/jetson-orin-int8.yaml``...).

A profile fixes what one deployment target needs (format, precision, tile, batch, FFT form); ``dramnet-edge export
--profile export/desktop-trt-fp16.yaml -o m.engine`` reads it and any flag given on the command line overrides the
matching field. Unknown keys are an error naming the accepted ones. ``notes`` is free text for people.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from ..errors import UserError


@dataclass(frozen=True)
class ExportProfile:
    target: str
    precision: str | None = None
    fft: str = "dft"
    tile: int | None = None  # None: the weights' own tile
    batch: int | None = None
    dynamic_batch: bool = False
    tau: float | None = None
    model: str | None = None
    notes: str = ""

    @classmethod
    def from_dict(cls, data: dict, source: str = "profile") -> "ExportProfile":
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of export settings, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"{source}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(known)}")
        if "target" not in data:
            raise UserError(f"{source}: 'target' is required")
        return cls(**data)


def load_profile(path: str | Path) -> ExportProfile:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"export profile not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return ExportProfile.from_dict(data, source=str(path))
