"""Shared fixtures."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

CODEC_MODULES = {"pure": "gateway.smpp._pure_codec", "native": "gateway.smpp._native_codec"}


@pytest.fixture(params=sorted(CODEC_MODULES))
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """Each SMPP codec backend in turn. A missing native build fails the test, never skips it."""
    try:
        return importlib.import_module(CODEC_MODULES[request.param])
    except ImportError as exc:
        pytest.fail(
            f"the {request.param} SMPP codec is not importable ({exc}); run scripts/setup.sh"
        )
