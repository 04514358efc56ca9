"""Suite-wide ordering, and the one-thread fixture.

The training tests run first: a pytest process that has already loaded onnxruntime / openvino / nncf (the export,
calibration and bench tests) segfaults in the training tests that follow them (seen in CI on a clean clone, and
in test_bench_quickstart's training step after test_calibrate_int8; the cause is not found, see the deploy issue's
note). Run first, they pass; the order of the rest is unchanged. "Training tests" are the test_train* modules and
the modules that train in-process (TRAINS_IN_PROCESS).
"""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): on 2 shared cores
    OpenMP's spinning threads slowed contended runs of the export/bench tests down by up to ~100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Modules that fork (DataLoader workers, subprocess): a fork after onnxruntime/openvino/nncf were loaded crashed the
# pytest process twice in this session (in test_families' DataLoader test, then in test_gpu_check's subprocess).
TRAINS_IN_PROCESS = ("test_bench_quickstart.py", "test_families.py", "test_gpu_check.py", "test_jetson_check_script.py",
                     "test_layers.py", "test_real_photo_gain.py")


def pytest_collection_modifyitems(session, config, items):
    def first(item) -> int:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        return 0 if module.startswith("test_train") or module in TRAINS_IN_PROCESS else 1

    items.sort(key=first)  # stable: keeps pytest's order inside each group
