import os

import pytest

# Headless MuJoCo rendering and one thread per test process keep the suite predictable on small machines.
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch

        # Small tensors: one intra-op thread is fastest, and extra threads fight Embree's and the other
        # processes' workers on small machines (measured 10-200x slowdowns of small ops with 2 threads).
        # Set before every test: code under test (trainers, benchmarks) may change it.
        torch.set_num_threads(1)
    except ImportError:
        pass
    yield
