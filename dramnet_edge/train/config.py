"""Training configuration: nested dataclasses read from YAML, overridden by ``--set key.sub=value``.

A recipe (``train/*.yaml``) is a mapping with the sections ``model``, ``data``, ``optim``, ``loss``,
``stages`` (a list) and ``run``. Every key is checked: an unknown one raises ValueError naming it and the
accepted ones. The resolved config (``TrainConfig.to_dict()``) is written to ``OUT/config.yaml`` and into every
checkpoint, so a run can be rebuilt from its output folder alone.

Overrides: ``--set optim.lr=1e-4``, ``--set stages.1.iters=500``, ``--set model.overrides.tile=112``. The value
is parsed as YAML and coerced to the field's declared type (``"3"`` for a float field gives 3.0; ``"none"`` or
``"null"`` for an optional field gives None); a value that does not fit raises ValueError.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ..errors import UserError

DRAMNET_STAGES = ("depth", "deblur", "blurmap")
AIBNET_STAGES = ("subdecoder",)
STAGE_NAMES = DRAMNET_STAGES + AIBNET_STAGES
DATASETS = ("synthetic", "paired", "families")
RECON_LOSSES = ("l1", "charbonnier", "psnr")
AMP_MODES = ("bf16", "fp16", "none")
DEVICES = ("auto", "cpu", "cuda")
DEPTH_SOURCES = ("restored", "input")


@dataclass
class ModelConfig:
    """Which network to build. ``overrides`` go to ``create_model`` (e.g. ``{tile: 112}``)."""

    name: str = "dramnet_tiny"
    overrides: dict = field(default_factory=dict)
    # Depth-Anything-V2 checkpoint (official key layout) to initialise DRAMNet's encoder and depth head.
    depth_anything_checkpoint: str | None = None
    # Pretrained NAFNet checkpoint for AIBNet's frozen encoder.
    encoder_checkpoint: str | None = None
    # A dramnet-edge weight file (.safetensors or training .pt) to start from (fine-tuning).
    init_checkpoint: str | None = None
    # DRAMNet only: init_checkpoint may hold fewer decoder columns than the model (overrides.num_columns); the
    # extra columns start as the identity, so training starts from exactly the checkpoint's output (a grown model).
    grow_columns: bool = False
    # Quantization-aware fine-tuning: INT8 fake quantization on the layers the INT8 export quantizes
    # (dramnet_edge/train/fake_quant.py); the weights stay FP32, validation runs fake-quantized.
    fake_quant: bool = False


@dataclass
class DataConfig:
    """Training and validation pairs.

    ``dataset: synthetic`` draws from the built-in synthetic blur engine (brings its own depth);
    ``dataset: families`` from the blur-family data (``data.families``: Gaussian, defocus, motion, shake on training
    photos and dead leaves, sRGB or linear light, noise, JPEG; no depth, so ``lambda_depth`` must be 0);
    ``dataset: paired`` reads ``root`` in one of the benchmark layouts (GoPro, RealBlur, REDS, RSBlur) and
    uses the ``ROOT/.pseudo_depth`` cache for DRAMNet's depth stage (``dramnet-edge pseudo-depth``).
    ``batch_size`` is per process; the global batch is ``batch_size x world size``.
    """

    dataset: str = "synthetic"
    root: str | None = None
    layout: str | None = None
    crop: int = 224
    batch_size: int = 8
    val_split: str = "test"
    val_root: str | None = None  # defaults to root
    val_crop: int | None = None  # defaults to crop
    val_size: int = 16  # held-out pairs scored at each validation (first N of the split, fixed)
    train_length: int = 4096  # synthetic only: distinct training samples per epoch
    num_workers: int = 0
    seed: int = 0
    synthetic: dict = field(default_factory=dict)  # SyntheticBlurConfig fields
    # Applied on top of ``synthetic`` for the validation pairs. No practically unblurred pairs by default: an
    # identical pair's PSNR is infinite (capped at 100 dB), and a 1e-5 residual moves one such pair by several dB,
    # which swamps a 16-image mean. ``max_pair_psnr`` re-draws partial-blur crops that fell inside the focal plane.
    val_synthetic: dict = field(default_factory=lambda: {"sharp_fraction": 0.0, "max_pair_psnr": 45.0})
    families: dict = field(default_factory=dict)  # FamilyBlurConfig fields (dataset: families)


@dataclass
class OptimConfig:
    """AdamW with a per-stage cosine schedule from ``lr`` to ``min_lr`` after ``warmup_iters`` linear warmup."""

    lr: float = 3e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_iters: int = 0
    grad_clip: float = 0.0  # max global grad norm; 0 disables


@dataclass
class LossConfig:
    """Loss weights. DRAMNet stage 2 (Eq. 4): recon + lambda_depth*depth + lambda_perc*perc + lambda_blur*blur.
    AIBNet (its Eq. 7): charbonnier + edge_weight*edge + fft_weight*fft.

    ``recon`` picks DRAMNet's L_recon: ``l1`` (Eq. 5: L1 + grad_weight * gradient L1) or ``charbonnier``
    (Charbonnier + grad_weight * gradient L1 + recon_fft_weight * spectrum L1, the AIBNet terms; ours: a smooth
    loss whose gradient vanishes at zero error, so pixels where blurred == sharp do not pin the residual to 0) or
    ``psnr`` (ours: the negative PSNR of each crop, averaged, + grad_weight * gradient L1; the quality benchmark's own
    measure, so every crop counts per dB: a soft crop that blur barely changed weighs as much as a heavily blurred one,
    where a per-pixel loss gives its small errors almost no weight).
    """

    recon: str = "l1"
    recon_fft_weight: float = 0.0

    silog_lambda: float = 0.85
    lambda_depth: float = 0.3
    lambda_perc: float = 0.1
    lambda_blur: float = 0.2
    grad_weight: float = 0.5  # weight of the spatial-gradient L1 inside L_recon (Eq. 5)
    # "restored": D_pred = frozen depth head on the encoder's view of the restored image (Eq. 6 as written);
    # "input": the depth of the blurred input from the same forward pass (no second encoder pass).
    depth_source: str = "restored"
    vgg19_weights: str | None = None  # torchvision-layout VGG-19 weights; without them the perceptual term is off
    charbonnier_eps: float = 1e-3
    edge_weight: float = 0.05
    fft_weight: float = 0.1


@dataclass
class StageConfig:
    """One training stage. DRAMNet: ``depth`` (encoder + depth head, SILog) then ``deblur`` (depth head frozen,
    composite loss); optionally ``blurmap`` (only the BME cascade, Eq. 8 alone, everything else frozen: teaches the
    blur map and the early-exit gate "sharp" without moving the deblurring path). AIBNet: one ``subdecoder`` stage
    per sub-decoder (``sub_decoder`` defaults to its order)."""

    name: str = "deblur"
    iters: int = 1000
    sub_decoder: int | None = None
    lr: float | None = None  # stage-specific peak lr (default optim.lr)
    min_lr: float | None = None
    # Synthetic data only: SyntheticBlurConfig fields laid over data.synthetic for this stage's training
    # samples (validation keeps data.synthetic + data.val_synthetic), e.g. {sharp_fraction: 0.2} for a blurmap stage.
    synthetic: dict | None = None


@dataclass
class RunConfig:
    """Where and how the loop runs."""

    seed: int = 0
    device: str = "auto"  # auto: cuda:LOCAL_RANK when CUDA is present, else cpu
    amp: str = "bf16"  # on CUDA: bf16 autocast, or fp16 with a GradScaler; always off on CPU
    log_every: int = 10
    val_every: int = 500
    ckpt_every: int = 500
    keep_every: int = 0  # also keep ckpt/step_XXXXXXX.pt every N steps (0: only last.pt)
    tensorboard: bool = True
    compile: bool = False
    threads: int = 0  # torch CPU threads (0: torch's default)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig("depth", 100), StageConfig("deblur", 1000)])
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        cfg = _build(cls, d or {}, "")
        validate(cfg)
        return cfg

    @property
    def family(self) -> str:
        return "aibnet" if self.model.name.startswith("aibnet") else "dramnet"


# ------------------------------------------------------------------------------------------- building


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise UserError(f"{where or 'config'} must be a mapping, got {type(d).__name__} {d!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in d if k not in names]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise UserError(f"unknown config key {key!r}; accepted {('in ' + where) if where else 'sections'}: {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in d.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (from YAML) to the annotated type ``tp``; ValueError naming ``where`` when it cannot."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ValueError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}")
        (inner,) = args or (Any,)
        return [_coerce(inner, v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list of {len(args)} values, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise UserError(f"{where} must have {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise UserError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # 4e5 in YAML is a float
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise UserError(f"{where} must be an integer, got {value!r}") from None
            if f.is_integer():
                return int(f)
        raise UserError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise AssertionError(f"unsupported config type {tp} at {where}")


def validate(cfg: TrainConfig) -> None:
    """Check choices and cross-field rules; ValueError naming the bad value and the accepted ones."""

    def choice(where: str, value, accepted):
        if value not in accepted:
            raise UserError(f"{where}={value!r} is not accepted; choose one of: {', '.join(map(str, accepted))}")

    choice("data.dataset", cfg.data.dataset, DATASETS)
    choice("run.amp", cfg.run.amp, AMP_MODES)
    choice("run.device", cfg.run.device.split(":")[0], DEVICES)
    choice("loss.depth_source", cfg.loss.depth_source, DEPTH_SOURCES)
    choice("loss.recon", cfg.loss.recon, RECON_LOSSES)
    if cfg.data.dataset == "families" and cfg.loss.lambda_depth > 0 and any(s.name == "deblur" for s in cfg.stages):
        raise UserError(f"data.dataset=families has no depth: set loss.lambda_depth=0 (got {cfg.loss.lambda_depth})")
    for where, v in (("data.batch_size", cfg.data.batch_size), ("data.crop", cfg.data.crop),
                     ("data.val_size", cfg.data.val_size), ("run.log_every", cfg.run.log_every),
                     ("run.val_every", cfg.run.val_every), ("run.ckpt_every", cfg.run.ckpt_every)):
        if v <= 0:
            raise UserError(f"{where} must be positive, got {v}")
    if not 0 < cfg.optim.min_lr <= cfg.optim.lr:
        raise UserError(f"optim.min_lr must be in (0, optim.lr={cfg.optim.lr}], got {cfg.optim.min_lr}")
    if cfg.model.grow_columns and not cfg.model.init_checkpoint:
        raise UserError("model.grow_columns needs model.init_checkpoint (the weights to grow from)")
    if not cfg.stages:
        raise UserError("stages is empty; give at least one stage, e.g. [{name: deblur, iters: 1000}]")
    accepted = AIBNET_STAGES if cfg.family == "aibnet" else DRAMNET_STAGES
    for i, st in enumerate(cfg.stages):
        choice(f"stages.{i}.name", st.name, accepted)
        if st.iters <= 0:
            raise UserError(f"stages.{i}.iters must be positive, got {st.iters}")
        if st.sub_decoder is not None and st.name != "subdecoder":
            raise UserError(f"stages.{i}.sub_decoder is only for AIBNet 'subdecoder' stages (stage is {st.name!r})")
        if st.synthetic is not None and cfg.data.dataset != "synthetic":
            raise UserError(f"stages.{i}.synthetic overrides the synthetic engine's settings, but data.dataset is "
                             f"{cfg.data.dataset!r}; drop it or use data.dataset=synthetic")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML recipe (None: the defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    cfg = TrainConfig.from_dict(raw)
    for item in overrides:
        cfg = apply_override(cfg, item)
    validate(cfg)
    return cfg


def apply_override(cfg: TrainConfig, item: str) -> TrainConfig:
    """Return ``cfg`` with one ``dotted.key=value`` applied, the value coerced to the field's type."""
    if "=" not in item:
        raise UserError(f"--set expects key=value (e.g. optim.lr=1e-4), got {item!r}")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    d = cfg.to_dict()
    node: Any = d
    for i, p in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise UserError(f"--set {key}: {where} must index the list (0..{len(node) - 1})")
            node = node[int(p)]
        elif isinstance(node, dict):
            if p not in node:
                raise UserError(f"--set {key}: unknown key {where!r}; accepted: {', '.join(node)}")
            if node[p] is None and i < len(parts) - 2:
                raise UserError(f"--set {key}: {where} is empty")
            if node[p] is None:
                node[p] = {}
            node = node[p]
        else:
            raise UserError(f"--set {key}: {where} is not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise UserError(f"--set {key}: index must be 0..{len(node) - 1}")
        node[int(last)] = value
    else:
        node[last] = value  # unknown keys are rejected by from_dict below, with the accepted names
    return TrainConfig.from_dict(d)


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
