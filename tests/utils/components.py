"""One set of loaded components (embedding models, Presidio engines, parser processes,
generators) shared by every app and runtime the tests build, so each model loads once
per test session. `tests/conftest.py` closes it at the end of the session."""

from __future__ import annotations

from api.components import Components

SHARED_COMPONENTS = Components()
