"""The kernels, chosen once at import: the compiled module from ext/ when it
loaded, else its pure-Python twin with the same names and signatures
(``_search_py``, ``_jsonwrite_py``, ``_aggregate_py`` beside the ``.pyi`` stubs here).

``ERCOT_FAST_REQUIRE_EXT=1`` turns a missing compiled module into an ImportError,
so a broken build can never hide behind the twins (CI sets it).
``ERCOT_FAST_KERNELS=python`` chooses the twins even where the compiled modules
load: what the kernels buy, measured (``python -m bench``).
"""
import importlib
import logging
import os

log = logging.getLogger(__name__)

# compiled module -> pure-Python twin
_PAIRS = {
    "ercot_fast.kernels._search": "ercot_fast.kernels._search_py",
    "ercot_fast.kernels._jsonwrite": "ercot_fast.kernels._jsonwrite_py",
    "ercot_fast.kernels._aggregate": "ercot_fast.kernels._aggregate_py",
}

#: compiled module name -> True when the compiled kernel is in use
COMPILED = {}


def _load(name):
    if os.environ.get("ERCOT_FAST_KERNELS") == "python":
        COMPILED[name] = False
        return importlib.import_module(_PAIRS[name])
    try:
        module = importlib.import_module(name)
        COMPILED[name] = True
        return module
    except ImportError as exc:
        if os.environ.get("ERCOT_FAST_REQUIRE_EXT") == "1":
            raise ImportError(
                f"{name} did not load ({exc}) and ERCOT_FAST_REQUIRE_EXT=1: "
                "rebuild with `pip install -e .` (needs gcc and the Python headers)"
            ) from exc
        COMPILED[name] = False
        log.warning("compiled kernel %s unavailable (%s); using its pure-Python twin", name, exc)
        return importlib.import_module(_PAIRS[name])


_search = _load("ercot_fast.kernels._search")
_jsonwrite = _load("ercot_fast.kernels._jsonwrite")
_aggregate = _load("ercot_fast.kernels._aggregate")

slice_bounds = _search.slice_bounds
write_prices = _jsonwrite.write_prices
PriceTable = _jsonwrite.PriceTable
aggregate = _aggregate.aggregate
