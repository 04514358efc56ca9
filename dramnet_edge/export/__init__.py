"""Deployment export (docs/architecture.md, deployment pipeline steps 1, 2 and 4).

fold.py           inference form: plain decoder path, BatchNorm folded, FFT as DFT matmuls, split graphs
formats.py        the one table of targets (suffix, precisions, flags, extra, backend) behind CLI, runtime and bench
exporter.py       folded graphs -> a target's files (INT8 through a hook; the export end to end is deploy/export.py)
qdq.py            reading Q/DQ graphs: constants, what TensorRT rejects
torch2onnx.py     dynamo exporter + onnxsim + checker;  onnx_fp16.py  typed FP16 with FP32 islands
onnx2engine.py    TensorRT engines;  torch_tensorrt.py  torch-tensorrt programs
torch2coreml.py   CoreML ML programs;  onnx2openvino.py  OpenVINO IR
lint.py           what TensorRT 10.x / CoreML / OpenVINO reject;  sidecar.py  the JSON beside every artifact
profile.py        the YAML target profiles in the top-level export/ folder

Heavy SDKs are imported inside the functions that use them; importing this package costs nothing. This layer imports
neither ``runtime`` nor ``calibrate`` (docs/architecture.md, Layers).
"""
