"""Fixtures for the offline bundle tests: a good bundle, built once per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_factory import BundleFixture, make_bundle


@pytest.fixture
def bundle(tmp_path: Path) -> BundleFixture:
    return make_bundle(tmp_path)
