"""The one-thread fixture.

The suite used to run the training tests and every module that forks first: a pytest process that had loaded
OpenVINO segfaulted in them. The cause was OpenVINO's CPU plugin leaving the thread's alternate signal stack
unmapped (the next Python signal handler, torch's SIGCHLD handler when DataLoader workers exit, then kills the
process); dramnet_edge/signal_stack.py fixes that in the library and tests/test_signal_stack.py covers it, so the
suite runs in pytest's own order.
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
