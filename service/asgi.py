"""The ASGI entry point uvicorn's workers call: ``evidence_intake.service.asgi:app_factory``.

A factory rather than a module-level ``app`` so that importing this module
creates nothing; each worker builds its own app from the environment.
"""

from __future__ import annotations

from fastapi import FastAPI

from .app import create_app
from .settings import load_settings


def app_factory() -> FastAPI:
    return create_app(load_settings())
