"""The JSON sidecar every artifact carries (``m.onnx`` -> ``m.json``), the parity photos and the parity figures.

Parity is measured on real photos (scikit-image's astronaut, coffee, chelsea, downscaled so the short side is one
tile and centre-cropped), not on noise: noise sits where a restoration network never works and hides, or invents,
precision problems in the smooth regions real images are made of.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
from ..errors import UserError

SIDECAR_FORMAT = "dramnet-edge-artifact"
SIDECAR_VERSION = 1
PARITY_PHOTOS = ("astronaut", "coffee", "chelsea")

# distribution name -> sidecar key; only the ones installed are recorded
_BACKEND_DISTRIBUTIONS = {
    "torch": "torch", "onnx": "onnx", "onnxscript": "onnxscript", "onnxsim": "onnxsim",
    "onnxruntime": "onnxruntime", "openvino": "openvino", "nncf": "nncf", "coremltools": "coremltools",
    "tensorrt": "tensorrt", "torch_tensorrt": "torch-tensorrt",
}


def toolkit_versions() -> dict[str, str]:
    """{"dramnet_edge": ..., "torch": ..., "onnxruntime": ..., ...} for every backend distribution installed here."""
    from .. import __version__

    versions = {"dramnet_edge": __version__}
    for dist, key in _BACKEND_DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def parity_photos(tile: int, names: tuple[str, ...] = PARITY_PHOTOS) -> np.ndarray:
    """(N, 3, tile, tile) float32 RGB in [0, 1]: scikit-image photos, short side resized to ``tile``, centre crop."""
    import skimage.data
    from skimage.transform import resize

    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3].astype(np.float32) / 255.0
        h, w = img.shape[:2]
        scale = tile / min(h, w)
        nh, nw = max(tile, round(h * scale)), max(tile, round(w * scale))
        img = resize(img, (nh, nw), anti_aliasing=True, preserve_range=True).astype(np.float32)
        y, x = (nh - tile) // 2, (nw - tile) // 2
        out.append(img[y : y + tile, x : x + tile].transpose(2, 0, 1))
    return np.clip(np.stack(out), 0.0, 1.0).astype(np.float32)


def parity_figures(reference: np.ndarray, output: np.ndarray, names: tuple[str, ...] = PARITY_PHOTOS) -> dict:
    """Agreement of an artifact's output with PyTorch's on the same (N, 3, T, T) inputs.

    max_abs_diff over raw outputs; PSNR (dB, capped at 100) of the [0, 1]-clipped images, per image, with the
    worst and the mean; nan_or_inf counts non-finite outputs (FP16 overflow shows up here first).
    """
    import torch

    from ..metrics import psnr

    reference = np.asarray(reference, dtype=np.float32)
    output = np.asarray(output, dtype=np.float32)
    if reference.shape != output.shape:
        raise UserError(f"parity: reference {reference.shape} and output {output.shape} differ in shape")
    finite = np.isfinite(output)
    nonfinite = int((~finite).sum())
    diff = np.abs(np.where(finite, output, 0.0) - reference)
    ref_t = torch.from_numpy(np.clip(reference, 0, 1))
    out_t = torch.from_numpy(np.clip(np.nan_to_num(output, nan=0.0, posinf=1.0, neginf=0.0), 0, 1))
    per_image = [float(v) for v in psnr(out_t, ref_t, max_db=100.0)]
    if nonfinite:
        per_image = [float("nan")] * len(per_image)
    return {
        "max_abs_diff": float(diff.max()) if nonfinite == 0 else float("inf"),
        "psnr_db_min": min(per_image),
        "psnr_db_mean": float(np.mean(per_image)),
        "psnr_db": {n: round(p, 2) for n, p in zip(names, per_image)},
        "nan_or_inf": nonfinite,
    }


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """``m.onnx`` -> ``m.onnx.json``; ``m.mlpackage`` -> ``m.mlpackage.json``; split graphs (``m.encoder.onnx``)
    -> ``m.onnx.json``. The artifact's whole name is kept so exports of one stem to other targets never collide."""
    from .formats import format_for_path

    artifact = Path(artifact)
    fmt = format_for_path(artifact)
    return artifact.with_name(_model_stem(artifact.name[: -len(fmt.suffix)]) + fmt.suffix + ".json")


def _model_stem(stem: str) -> str:
    """``m.encoder`` -> ``m``: the stem of the whole-model graph for a split graph's stem."""
    from .names import GRAPH_NAMES, MODEL

    for graph in (g for g in GRAPH_NAMES if g != MODEL):
        if stem.endswith("." + graph):
            return stem[: -len(graph) - 1]
    return stem


def _legacy_sidecar_path(artifact: Path) -> Path | None:
    """Where exports before the per-target sidecar name kept it (``m.onnx`` -> ``m.json``), or None."""
    from .formats import format_for_path

    try:
        fmt = format_for_path(artifact)
    except ValueError:
        return None
    return artifact.with_name(_model_stem(artifact.name[: -len(fmt.suffix)]) + ".json")


# -- the files of an artifact, with their SHA-256 --------------------------------------------------------------

def _member_files(path: Path) -> list[Path]:
    """The files one artifact entry stands for: itself, an OpenVINO .xml with its .bin, every file of an
    .mlpackage folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    files = [path]
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        files.append(path.with_suffix(".bin"))
    return files


def artifact_file_hashes(folder: str | os.PathLike, names) -> dict[str, dict]:
    """{relative path: {"sha256", "bytes"}} of every file behind the artifact entries ``names`` (relative to
    ``folder``), for the sidecar's ``files`` entry."""
    from ..io_utils import file_sha256

    folder = Path(folder)
    out = {}
    for name in names:
        for f in _member_files(folder / name):
            out[f.relative_to(folder).as_posix()] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    return out


def verify_artifact_files(sidecar: dict, folder: str | os.PathLike, source: str | os.PathLike = "") -> None:
    """Check every file the sidecar lists under ``files`` against its size and SHA-256; a one-line ValueError
    names the first missing or damaged one. Sidecars from before the hashes were recorded pass unchecked."""
    from ..io_utils import file_sha256

    folder = Path(folder)
    for name, entry in (sidecar.get("files") or {}).items():
        f = folder / name
        if not f.is_file():
            raise UserError(f"artifact file missing: {f} (listed in the sidecar of {source or folder})")
        if f.stat().st_size != entry.get("bytes", f.stat().st_size) or file_sha256(f) != entry.get("sha256"):
            raise UserError(f"artifact file damaged: {f} does not match the SHA-256 its sidecar recorded "
                             "(truncated or changed since export); export it again")


def build_sidecar(
    *, target: str, backend: str, model_name: str, checkpoint: str | os.PathLike | None, tile: int, precision: str,
    fft: str, tau: float | None, batch: int | str, graphs: dict[str, str], opset: int | None, parity: dict | None,
    extra: dict | None = None,
) -> dict:
    """The sidecar dict. ``graphs`` holds file names relative to the sidecar's folder."""
    from ..io_utils import file_sha256

    return {
        "format": SIDECAR_FORMAT,
        "sidecar_version": SIDECAR_VERSION,
        "target": target,
        "backend": backend,
        "model": model_name,
        "checkpoint": None if checkpoint is None else Path(checkpoint).name,
        "checkpoint_sha256": None if checkpoint is None else file_sha256(checkpoint),
        "tile": tile,
        "precision": precision,
        "fft": fft,
        "tau": tau,
        "opset": opset,
        "batch": batch,
        "graphs": graphs,
        "parity": parity,
        "versions": toolkit_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def write_sidecar(path: str | os.PathLike, sidecar: dict) -> None:
    from ..io_utils import atomic_write

    text = json.dumps(sidecar, indent=2, allow_nan=True) + "\n"

    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write(path, write)


def read_sidecar(artifact_or_sidecar: str | os.PathLike, verify: bool = False) -> tuple[dict, Path]:
    """(sidecar dict, folder its graph names are relative to) for an artifact path or a ``.json`` sidecar path.

    verify: also check the SHA-256 of every file of the artifact (``verify_artifact_files``)."""
    p = Path(artifact_or_sidecar)
    path = p if p.suffix == ".json" else sidecar_path(p)
    if not path.is_file() and p.suffix != ".json":
        legacy = _legacy_sidecar_path(p)
        if legacy is not None and legacy.is_file():
            path = legacy  # an export from before the per-target sidecar names
    if not path.is_file():
        raise UserError(f"{p}: no sidecar {path.name} beside it; artifacts are loaded with the JSON "
                         "`dramnet-edge export` writes next to them")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: not a dramnet-edge artifact sidecar (format {found!r})")
    if p.suffix != ".json" and path.name != sidecar_path(p).name:  # legacy m.json: is it this artifact's?
        from .formats import format_for_path

        if data.get("target") != format_for_path(p).name:
            raise UserError(f"{p}: no sidecar {sidecar_path(p).name} beside it ({path.name} belongs to the "
                             f"{data.get('target')} export of this stem)")
    if verify:
        verify_artifact_files(data, path.parent, p)
    return data, path.parent
