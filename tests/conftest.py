"""Fixtures shared by the whole test suite."""

import pytest
import tiny_models
import torch


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One intra-op thread for every test: the models here are tiny, and on a shared 2-core machine OpenMP
    spinning makes small ops up to ~100x slower with two threads than with one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Factories of the tiny models in ``tiny_models.py``; call them with config overrides: ``tiny_vitok(decoder_depth=2)``.


@pytest.fixture
def tiny_vitok():
    return tiny_models.tiny_vitok


@pytest.fixture
def tiny_cct():
    return tiny_models.tiny_cct


@pytest.fixture
def tiny_text_cct():
    return tiny_models.tiny_text_cct


@pytest.fixture
def tiny_dit_2d():
    return tiny_models.tiny_dit_2d


@pytest.fixture
def tiny_dit_3d():
    return tiny_models.tiny_dit_3d
