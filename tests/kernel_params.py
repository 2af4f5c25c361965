"""Parametrise tests over a compiled kernel and its pure-Python twin."""
import importlib
import os

import pytest


def kernel_and_twin(compiled, twin):
    """pytest params: the compiled module (skipped if it did not build, failed
    if ERCOT_FAST_REQUIRE_EXT=1) and the twin."""
    try:
        module = importlib.import_module(compiled)
        compiled_param = pytest.param(module, id="compiled")
    except ImportError as exc:
        if os.environ.get("ERCOT_FAST_REQUIRE_EXT") == "1":
            raise
        compiled_param = pytest.param(None, id="compiled", marks=pytest.mark.skip(reason=f"not built: {exc}"))
    return [compiled_param, pytest.param(importlib.import_module(twin), id="twin")]
