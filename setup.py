"""Builds the Cython extensions in native/ into the gateway package.

Metadata lives in pyproject.toml; this file only declares the extension modules. Each one has a
pure-Python twin that is used when the extension is missing (or with GATEWAY_PURE=1).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("gateway.smpp._native_codec", ["native/smpp_codec.pyx"]),
    # the same libsqlite3 the sqlite3 module links (Debian: libsqlite3-dev for the header)
    Extension(
        "gateway.store._native_statements",
        ["native/store_statements.pyx"],
        libraries=["sqlite3"],
    ),
    Extension("gateway.store._native_writer", ["native/store_writer.pyx"]),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
