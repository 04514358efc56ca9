"""Memory reporting for TensorRT artifacts: the property chosen per TensorRT version and the bench fields.

NVIDIA/TensorRT python/src/infer/pyCore.cpp binds ``device_memory_size_v2`` from v10.1.0 (absent at v10.0.0);
pyCoreDoc.h: "The amount of device memory required by an IExecutionContext". Real figures need a GPU and
TensorRT: the CUDA test below skips without one.
"""

from types import SimpleNamespace

import pytest
import torch

from dramnet_edge.bench.device import PeakMemory, tensorrt_memory_mb
from dramnet_edge.runtime.backends_tensorrt import engine_memory


def test_engine_memory_prefers_the_v2_property():
    assert engine_memory(SimpleNamespace(device_memory_size_v2=3 << 20, device_memory_size=1), 100) == {
        "activation_bytes": 3 << 20, "engine_file_bytes": 100}
    # TensorRT 10.0: only the v1 property
    assert engine_memory(SimpleNamespace(device_memory_size=5), 7)["activation_bytes"] == 5


def test_bench_fields_for_sessions_with_and_without_tensorrt_memory():
    class Reporting:
        def device_memory(self):
            return {"engines": {}, "activation_bytes": 48 << 20, "engine_file_bytes": 6 << 20,
                    "load_device_bytes": 120 << 20}

    assert tensorrt_memory_mb(Reporting()) == {"trt_activation_mb": 48.0, "trt_engine_file_mb": 6.0,
                                               "trt_load_device_mb": 120.0}
    assert tensorrt_memory_mb(object()) == {}  # torch / ONNX Runtime sessions: nothing to add


def test_peak_memory_off_cuda_has_no_device_figures():
    with PeakMemory(cuda=False) as mem:
        bytearray(1 << 20)
    assert mem.device_used_peak_mb is None and mem.device_used_delta_mb is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_peak_memory_sees_device_allocations():
    with PeakMemory(cuda=True) as mem:
        x = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        del x
    assert mem.device_used_peak_mb >= mem.device_used_delta_mb >= 0 and mem.cuda_peak_mb >= 64
