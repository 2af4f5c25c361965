"""Kernel selection: compiled modules when built, twins otherwise, and never a
silent fallback when ERCOT_FAST_REQUIRE_EXT=1."""
import importlib
import os
import subprocess
import sys

import pytest

from ercot_fast import kernels


@pytest.mark.skipif(os.environ.get("ERCOT_FAST_REQUIRE_EXT") != "1", reason="only when the build must have compiled")
def test_every_compiled_kernel_loaded():
    assert kernels.COMPILED and all(kernels.COMPILED.values()), kernels.COMPILED
    assert type(kernels.slice_bounds).__name__ == "cython_function_or_method"
    assert kernels.PriceTable.__module__ == "ercot_fast.kernels._jsonwrite"
    assert type(kernels.aggregate).__name__ == "cython_function_or_method"


def test_a_missing_kernel_fails_when_required(monkeypatch):
    real_import = importlib.import_module

    def without_compiled(name):
        if name == "ercot_fast.kernels._search":
            raise ImportError("not built")
        return real_import(name)

    monkeypatch.setitem(kernels.COMPILED, "ercot_fast.kernels._search", kernels.COMPILED["ercot_fast.kernels._search"])
    monkeypatch.setattr(importlib, "import_module", without_compiled)
    monkeypatch.setenv("ERCOT_FAST_REQUIRE_EXT", "1")
    with pytest.raises(ImportError, match="ERCOT_FAST_REQUIRE_EXT=1"):
        kernels._load("ercot_fast.kernels._search")
    monkeypatch.setenv("ERCOT_FAST_REQUIRE_EXT", "0")
    module = kernels._load("ercot_fast.kernels._search")
    assert module.__name__ == "ercot_fast.kernels._search_py"
    assert kernels.COMPILED["ercot_fast.kernels._search"] is False


def test_the_twins_can_be_chosen_where_the_kernels_load():
    """ERCOT_FAST_KERNELS=python (what bench's "ours, pure-Python twins" runs):
    every kernel is its twin, even with ERCOT_FAST_REQUIRE_EXT=1 (CI's)."""
    env = {**os.environ, "ERCOT_FAST_KERNELS": "python", "ERCOT_FAST_REQUIRE_EXT": "1"}
    code = ("from ercot_fast import kernels; print(sorted(set(kernels.COMPILED.values())), "
            "kernels.slice_bounds.__module__, kernels.PriceTable.__module__, kernels.aggregate.__module__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[False]", "ercot_fast.kernels._search_py", "ercot_fast.kernels._jsonwrite_py",
                           "ercot_fast.kernels._aggregate_py"]
