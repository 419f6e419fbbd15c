"""Where a registered model comes from: validating a source (`local_path`, `hub_id`,
`endpoint`, `package`) without fetching anything, resolving it to local files, and the
sha256 digest of those files."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.catalog.models import RegistryModel
from core.errors import InvalidInput
from ingest.config import check_reranker_path
from ingest.embed import PACKAGED_MODELS, digest_dir, resolve_model_path

SOURCE_TYPES = ("local_path", "hub_id", "endpoint", "package", "builtin")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")


def digest_path(path: Path) -> str:
    """sha256 of a model folder (the same weight digest the embedding cache builds on) or
    of a single model file (e.g. a .gguf), streamed."""

    if path.is_dir():
        return digest_dir(path)
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Source:
    """A validated source: what to store, plus the local files (if any) it resolves to."""

    source: str
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def packaged_embedding_path(ref: str) -> Path | None:

    return PACKAGED_MODELS[ref]() if ref in PACKAGED_MODELS else None


def check_source(kind: str, source_type: str, source: str) -> Source:
    """Validate a source without fetching anything; local files are resolved."""
    if source_type not in SOURCE_TYPES:
        raise InvalidInput(
            f"unknown source_type {source_type!r}; choose one of {', '.join(SOURCE_TYPES)}"
        )
    source = source.strip()
    if not source:
        raise InvalidInput("source must not be empty")
    if source_type == "builtin":
        raise InvalidInput(
            "source_type 'builtin' is reserved for the models this service ships (they "
            "register themselves); use local_path, hub_id, endpoint or package"
        )
    if source_type == "local_path":
        return _check_local_path(kind, source)
    if source_type == "hub_id":
        if not HUB_ID_RE.match(source):
            raise InvalidInput(
                f"hub_id {source!r} is not a hub id like 'org/model-name'; use "
                "source_type local_path for a folder on disk"
            )
        # Never downloaded: only a copy shipped in an installed package is resolved.
        path = packaged_embedding_path(source) if kind == "embedding" else None
        return Source(source=source, path=path)
    if source_type == "endpoint":
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"endpoint {source!r} must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise InvalidInput(
                "endpoint must not carry credentials; configure keys in the server "
                "settings (e.g. RAGOPS_OPENAI_API_KEY), not in the registry"
            )
        return Source(source=source.rstrip("/"))
    return _check_package(kind, source)


def _check_local_path(kind: str, source: str) -> Source:
    path = Path(source).expanduser()
    if not path.exists():
        raise InvalidInput(
            f"local_path {source!r} does not exist on the server; copy the model there "
            "first (paths are resolved on the machine that runs ragops)"
        )
    path = path.resolve()
    if kind == "embedding":
        resolve_model_path(str(path))  # InvalidInput unless a sentence-transformers folder
    elif kind == "reranker":
        check_reranker_path(str(path))
    return Source(source=str(path), path=path)


def _check_package(kind: str, source: str) -> Source:
    if kind == "embedding":
        path = packaged_embedding_path(source)
        if path is None:
            raise InvalidInput(
                f"package embedding model {source!r} is unknown; packaged models: "
                f"{', '.join(sorted(PACKAGED_MODELS))}"
            )
        return Source(source=source, path=path, extra={"path": str(path)})
    try:
        version = importlib.metadata.version(source)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None and importlib.util.find_spec(source.replace("-", "_")) is None:
        raise InvalidInput(
            f"package {source!r} is not installed on the server; install it "
            "(pip install ...) and register again"
        )
    return Source(source=source, extra={"version": version} if version else {})


def model_path(model: RegistryModel) -> Path | None:
    """The local files a registered model resolves to, if any (never fetched)."""
    if model.source_type == "local_path":
        return Path(model.source)
    if model.kind == "embedding" and model.source_type in ("package", "hub_id"):
        return packaged_embedding_path(model.source)
    if model.kind == "generator" and model.source_type == "builtin" and model.name == "local":
        path = (model.metadata_ or {}).get("path")
        return Path(path) if path else None
    return None


def embedding_ref(model: RegistryModel) -> str:
    """What to put in a KB's `embedding_model` to use this model (a local folder or a
    packaged model's name)."""
    if model.source_type == "builtin":
        return model.name
    return model.source


def resolve_embedding(ref: str) -> Path | None:

    try:
        return resolve_model_path(ref)
    except InvalidInput:
        return None


def resolve_file(ref: str) -> Path | None:
    path = Path(ref).expanduser()
    return path.resolve() if path.exists() else None
