"""Build the Cython kernels in ext/ as ercot_fast.* extension modules.

Environment switches (as asyncpg, msgspec and falcon have them):
  ERCOT_FAST_ANNOTATE=1   write Cython's HTML annotation next to each .pyx
  ERCOT_FAST_DEBUG=1      compile with -O0 -g and Cython's bounds checks on
  ERCOT_FAST_PURE=1       build no extension: the pure-Python twins are used
"""
import os

import numpy
from setuptools import Extension, setup

# Each kernel is named explicitly: module name -> sources (the .pyx, then C it links).
KERNELS = {
    "ercot_fast.kernels._search": ["ext/search.pyx"],
    # shortest.c: repr of a double from Zmij's shortest decimal (ext/zmij/, vendored)
    "ercot_fast.kernels._jsonwrite": ["ext/jsonwrite.pyx", "ext/shortest.c"],
    "ercot_fast.kernels._aggregate": ["ext/aggregate.pyx"],
}


def extensions():
    if os.environ.get("ERCOT_FAST_PURE") == "1":
        return []
    from Cython.Build import cythonize

    debug = os.environ.get("ERCOT_FAST_DEBUG") == "1"
    args = ["-O0", "-g"] if debug else ["-O3"]
    exts = [
        Extension(
            name,
            sources,
            include_dirs=[numpy.get_include(), "ext"],
            extra_compile_args=args + ["-Wall", "-Wno-unused-function"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for name, sources in KERNELS.items()
    ]
    return cythonize(
        exts,
        language_level=3,
        annotate=os.environ.get("ERCOT_FAST_ANNOTATE") == "1",
        compiler_directives={"embedsignature": True, "boundscheck": debug, "wraparound": debug},
    )


setup(ext_modules=extensions())
