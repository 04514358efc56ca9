"""Orchestration over the layers below: an export with its INT8 calibration and parity check (``export.py``), and
the OpenVINO IR cached per weight file that ``deblur --backend auto`` runs (``cache.py``).

Above ``export`` (torch -> files), ``runtime`` (files -> outputs) and ``calibrate`` (INT8); below ``bench`` and the
CLI. Still elsewhere (docs/architecture.md, Layers): calibration with its budget and parity
(``calibrate.pipeline.calibrate``), ``bench.validate`` and ``bench.quickstart``.
"""
