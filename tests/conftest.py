"""Fixtures shared by the whole test suite."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One intra-op thread for every test: the models here are tiny, and on a shared 2-core machine OpenMP
    spinning makes small ops up to ~100x slower with two threads than with one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
