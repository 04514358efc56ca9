"""INT8 calibration (docs/architecture.md, deployment pipeline step 3): blur-stratified calibration tiles, Q/DQ ONNX, accuracy-bounded
fallback, and the INT8 paths of the other targets.

recipe.py         calibration-set recipes (the top-level calibrate/*.yaml): tiles, held-out tiles, strata
tiles.py          candidates (synthetic engine, image folder, paired dataset) -> blur strata -> calib / held-out tiles
graph.py          what to quantize in an exported graph: layer groups, sensitive nodes (DFT path, softmax attention,
                  blur-map head, last conv), found from the graph structure
quantize.py       one graph -> Q/DQ INT8 ONNX by NNCF, ONNX Runtime or NVIDIA ModelOpt; Q/DQ inspection, TensorRT checks
fallback.py       per-group sensitivity and reverts to FP32 until the held-out PSNR drop is within budget: one revert
                  loop (``revert_until_within``) with backends (Q/DQ ONNX here, OpenVINO in openvino_int8.py)
onnx_graphs.py    the four graphs end to end: calibration set, fallback, Q/DQ graphs, verification, report dict
pipeline.py       ``calibrate`` (the CLI's entry); re-exports the names of onnx_graphs, export_int8, openvino_int8, report
export_int8.py    ``quantize_for_export`` (export --int8)
openvino_int8.py  NNCF's own INT8 OpenVINO IR, with OpenVINO in the fallback loop (``openvino_int8_graphs``)
coreml_w8a8.py    CoreML W8A8 via coremltools' LinearQuantizer on a static FX trace (export --target coreml --int8)
report.py         the report files (JSON, Markdown) and the sidecar summary;  runner.py  ONNX Runtime over numpy batches

Heavy SDKs (onnxruntime, nncf, modelopt, openvino, coremltools) are imported inside the functions that use them.
"""
