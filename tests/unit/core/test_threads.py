"""BLAS thread caps (core.threads): applied to the libraries loaded, or left alone."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from core.threads import limit_blas_threads


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def restore_blas():
    with threadpool_limits(limits=None):  # restores the original counts on exit
        yield


def test_caps_every_loaded_blas_library(restore_blas):
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    assert _blas_threads(), "numpy's BLAS should be visible to threadpoolctl"
    assert limit_blas_threads(1) == len(_blas_threads())
    assert set(_blas_threads()) == {1}


def test_zero_leaves_the_libraries_alone(restore_blas):
    before = _blas_threads()
    assert limit_blas_threads(0) == 0
    assert _blas_threads() == before
