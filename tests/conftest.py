"""The one-thread fixture, the private backend cache, and the loader of the benchmark scripts.

The suite used to run the training tests and every module that forks first: a pytest process that had loaded
OpenVINO segfaulted in them. The cause was OpenVINO's CPU plugin leaving the thread's alternate signal stack
unmapped (the next Python signal handler, torch's SIGCHLD handler when DataLoader workers exit, then kills the
process); dramnet_edge/signal_stack.py fixes that in the library and tests/test_signal_stack.py covers it, so the
suite runs in pytest's own order.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): on 2 shared cores
    OpenMP's spinning threads slowed contended runs of the export/bench tests down by up to ~100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def private_backend_cache(tmp_path_factory):
    """Every test sees an empty cache of its own instead of the user's ~/.cache/dramnet-edge, so whether
    ``deblur --backend auto`` finds a cached OpenVINO IR never depends on the machine the suite runs on."""
    import os

    from dramnet_edge.deploy.cache import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("backend-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old
