"""INT8 OpenVINO IR through NNCF's own OpenVINO path (docs/architecture.md: OpenVINO rejected ONNX Runtime's Q/DQ model with
signed activations; NNCF's INT8 IR ran).

The FP32 IR source is the DFT-free FP32 ONNX graph (the export's default OpenVINO route); NNCF quantizes the
``openvino.Model`` with the CPU hardware config (u8 activations where non-negative, i8 symmetric per-channel weights),
MinMax activation ranges (docs/architecture.md: the default estimator left a near-white image at 25 dB), the inputs of
convolutions and matmuls only, and the same nodes left in float as the ONNX path: the sensitive ones and the
fallback's reverted groups, matched by ONNX node name (OpenVINO keeps it as the op's friendly name, with
``/WithoutBiases`` on a convolution whose bias became its own Add).

Weights use NNCF's overflow fix on every layer (7-bit weight range): x86 CPUs without VNNI multiply u8 x s8 pairs
into saturating int16 sums. Measured on this machine's AVX2 EPYC (dramnet_tiny stand-in weights, reporting photos):
INT8 vs FP32 IR 40.9 dB with the default first-layer-only fix, 44.4 dB with it on every layer. OpenVINO's INT8
kernels still land well below the Q/DQ simulation of the same placement (53.6 dB on ONNX Runtime), so the pipeline
continues the fallback with OpenVINO itself in the loop (``pipeline.openvino_int8_graphs``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ..errors import MissingExtraError, UserError
from ..signal_stack import pin_signal_stack


_QUANTIZED_OV_TYPES = ("Convolution", "GroupConvolution", "MatMul")


def _ignored_names(onnx_node_names) -> list[str]:
    names = []
    for n in onnx_node_names:
        names += [n, f"{n}/WithoutBiases"]
    return names


def quantize_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike,
                      calibration: list[dict[str, np.ndarray]], *, exclude=(), batch: int | str = "dynamic",
                      method: str = "minmax") -> dict:
    """Write an INT8 IR (``xml_path`` + .bin) quantized by NNCF from the FP32 ONNX ``onnx_path``.

    calibration: input dicts (batches). exclude: ONNX node names kept in float. batch: the IR's batch axis (an int
    or "dynamic"). Returns {"nncf": version, "ignored": n, "fake_quantize": n}.
    """
    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError:
        raise MissingExtraError('INT8 OpenVINO needs openvino and nncf: pip install "dramnet-edge[openvino]"') from None

    from ..export.lint import lint_onnx
    from ..export.onnx2openvino import _set_batch

    if any(p.startswith("DFT") for p in lint_onnx(onnx_path)):
        raise UserError(f"{onnx_path}: OpenVINO's ONNX frontend rejects the DFT op; export with --fft dft")
    estimator = {"minmax": RangeEstimatorParametersSet.MINMAX, "entropy": RangeEstimatorParametersSet.HISTOGRAM,
                 "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE}[method]
    from .quantize import quiet

    model = ov.convert_model(str(onnx_path))
    # Like the ONNX path, only the inputs of convolutions and matmuls: NNCF's CPU config would also quantize
    # element-wise inputs (the residual adds, the blur gain, the DFT-path concatenations), which measured 28.6 dB
    # against FP32 on the reporting photos where the same exclusions on Conv/MatMul alone keep the ONNX path at ~54.
    other_types = sorted({op.get_type_name() for op in model.get_ops()} - set(_QUANTIZED_OV_TYPES))
    with quiet():
        quantized = nncf.quantize(
            model, nncf.Dataset(calibration), preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU, subset_size=max(1, len(calibration)),
            ignored_scope=nncf.IgnoredScope(names=_ignored_names(exclude), types=other_types, validate=False),
            advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=estimator,
                                                               overflow_fix=OverflowFix.ENABLE),
        )
    pin_signal_stack()  # NNCF compiles through its own OpenVINO cores: see export/onnx2openvino.compile_openvino
    _set_batch(quantized, batch)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    fq = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
    return {"nncf": nncf.__version__, "ignored": len(list(exclude)), "fake_quantize": fq}
