"""The names of an export's graphs and of their input and output tensors, in one place.

These strings are on disk: graph names key the sidecar's ``graphs`` entries and name the files
(``m.encoder.onnx``), tensor names are the ONNX / CoreML / OpenVINO / TensorRT input and output names. Changing one
changes the artifact format; export, runtime and calibrate import them from here instead of spelling them.
Plain constants, no imports.
"""

from __future__ import annotations

# -- graphs (``fold.split_graphs``) -------------------------------------------------------------------------------
MODEL = "model"  #: x -> image (with a baked tau: both decoders, selected per tile)
ENCODER = "encoder"  #: x -> level0..level3, blur
DECODER_FULL = "decoder_full"  #: x, levels, blur -> image
DECODER_LIGHT = "decoder_light"  #: x, levels, blur -> image
GATE = "gate"  #: x -> blur (the skip gate)

GRAPH_NAMES = (MODEL, ENCODER, DECODER_FULL, DECODER_LIGHT, GATE)
#: The graphs INT8 calibration quantizes; the skip gate stays FP32.
QUANTIZED_GRAPHS = GRAPH_NAMES[:4]
#: The graphs of the early exit every artifact backend loads up front.
SPLIT_GRAPHS = (ENCODER, DECODER_FULL, DECODER_LIGHT)

# -- tensors --------------------------------------------------------------------------------------------------------
INPUT = "x"  #: (N, 3, T, T) blurred tiles, every graph's first input
IMAGE = "image"  #: (N, 3, T, T) restored tiles (model, decoder_full, decoder_light)
BLUR = "blur"  #: the blur map (encoder, gate)
LEVELS = ("level0", "level1", "level2", "level3")  #: the encoder's decoder levels
ENCODER_OUTPUTS = (*LEVELS, BLUR)
DECODER_INPUTS = (INPUT, *ENCODER_OUTPUTS)
