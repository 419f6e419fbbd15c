"""The services index code uses: the core ones plus the store of open index versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from core.services import CoreServices

if TYPE_CHECKING:
    from index.store import IndexStore


class IndexServices(CoreServices, Protocol):
    indexes: IndexStore
