"""Raw uploaded bytes, content-addressed by sha256: a local directory by default, an
S3-compatible object store when RAGOPS_BLOB_URL is set (`blob_store` picks).

Example::

    blobs = blob_store(settings)        # LocalBlobStore or S3BlobStore
    sha = hashlib.sha256(data).hexdigest()
    blobs.put(sha, data)                # whole or not at all
    assert blobs.get(sha) == data       # FileNotFoundError once deleted
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.config import S3Location, Settings

if TYPE_CHECKING:
    from botocore.client import BaseClient

# A key that is a sha256 (what every caller passes): the bytes must hash to it.
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MiB = 1024 * 1024


class BlobStore(Protocol):
    """Where raw uploads live. Keys are letters and digits (the content's sha256 hex);
    every failure of the store itself is an OSError, so callers handle a full disk and
    an unreachable bucket alike."""

    def put(self, key: str, data: bytes) -> None:
        """Store the bytes under `key`, all or nothing: a failure (OSError) leaves
        neither the blob nor a partial file behind."""
        ...

    def get(self, key: str) -> bytes:
        """Raises FileNotFoundError when the blob is gone (and only then: a store that
        cannot be reached raises another OSError)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; deleting one that is not there is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def check_writable(self) -> None:
        """Write and remove a small object where blobs go; OSError when that fails."""
        ...


def blob_store(settings: Settings) -> BlobStore:
    """The deployment's blob store: S3 for RAGOPS_BLOB_URL, else the local folder."""
    location = settings.blob_location
    if location is None:
        return LocalBlobStore(settings.blob_dir)
    return S3BlobStore(
        location, access_key=settings.blob_access_key, secret_key=settings.blob_secret_key
    )


def _check_key(key: str) -> str:
    if not key.isalnum():
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write, flush to disk, then rename: neither a crash nor a full disk leaves a
        # half-written blob under its key, and a failed write removes its temp file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def check_writable(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".probe-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"ok")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.unlink(tmp)


class ObjectStoreError(OSError):
    """The object store refused a request or could not be reached. `strerror` is the
    short reason (the operation and the store's error code: what an API client may be
    shown); str() adds the bucket, the object and what to do (logs, `/readyz`)."""

    detail: str | None = None

    def __str__(self) -> str:
        return self.detail or self.strerror or super().__str__()


class BlobCorrupted(ObjectStoreError):
    """A stored blob's bytes do not hash to its key (changed or damaged in the store)."""


class S3BlobStore:
    """Blobs as objects `<prefix>/<sha256>` in one bucket of an S3-compatible store.

    - put: the bytes must hash to the key (ValueError otherwise: a caller's bug). Up to
      `multipart_threshold` one PutObject carrying Content-MD5 and x-amz-checksum-sha256,
      which the server verifies before it stores anything (S3 and MinIO answer BadDigest
      on a mismatch); above it a multipart upload in `multipart_chunksize` parts (at least
      5 MiB, S3's minimum), each part with its own SHA-256 the server verifies, aborted
      when any step fails. An object appears only when its upload completes, so a failed
      put leaves nothing under the key.
    - get: asks for the stored checksum (botocore compares it with the bytes received,
      single-part objects) and checks that the bytes hash to the key; BlobCorrupted
      otherwise. A missing object is FileNotFoundError; a missing bucket or a refusal is
      an ObjectStoreError (not FileNotFoundError: that would read as "the upload is gone").
      Without s3:ListBucket on the bucket S3 answers 403 for a missing key, which is
      then an ObjectStoreError too: grant it.
    - delete is idempotent (S3 answers 204 for a missing key).

    The client is built on first use (boto3 loads its service models then). Thread-safe.
    """

    def __init__(
        self,
        location: S3Location,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.location = location
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = max(multipart_chunksize, 5 * MiB)
        self._credentials = (access_key, secret_key)
        self._timeouts = (connect_timeout, read_timeout)
        self._clients: dict[bool, BaseClient] = {}
        self._lock = threading.Lock()

    # -- the protocol -----------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        digest = hashlib.sha256(data).digest()
        if _SHA256.match(key) and digest.hex() != key:
            raise ValueError(f"blob key {key} is not the sha256 of its bytes ({digest.hex()})")
        try:
            if len(data) < self.multipart_threshold:
                self._client().put_object(
                    Bucket=self.location.bucket,
                    Key=name,
                    Body=data,
                    ContentMD5=_b64(hashlib.md5(data, usedforsecurity=False).digest()),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(digest),
                )
            else:
                self._multipart(name, data)
        except Exception as exc:  # noqa: BLE001 - every store failure becomes an OSError
            raise self._error("PutObject", name, exc) from exc

    def get(self, key: str) -> bytes:
        name = self._name(key)
        try:
            response = self._client().get_object(
                Bucket=self.location.bucket, Key=name, ChecksumMode="ENABLED"
            )
            data = response["Body"].read()  # botocore checks the stored checksum here
        except Exception as exc:  # noqa: BLE001
            from botocore.exceptions import FlexibleChecksumError  # loaded with the client

            if isinstance(exc, FlexibleChecksumError):
                raise _store_error(
                    "a stored blob does not match its checksum; upload the file again",
                    f"{self.location.url}/{key}: the bytes read do not match the checksum "
                    f"stored with them ({exc}); the object was damaged in the store or on the "
                    "way; upload the file again",
                    BlobCorrupted,
                ) from exc
            raise self._error("GetObject", name, exc) from exc
        if _SHA256.match(key):
            got = hashlib.sha256(data).hexdigest()
            if got != key:
                raise _store_error(
                    "a stored blob does not hash to its key; upload the file again",
                    f"{self.location.url}/{key}: the stored bytes hash to {got}, not to their "
                    "key: the object was changed or damaged in the store; upload the file again",
                    BlobCorrupted,
                )
        return data

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._client().delete_object(Bucket=self.location.bucket, Key=name)
        except Exception as exc:  # noqa: BLE001
            error = self._error("DeleteObject", name, exc)
            if isinstance(error, FileNotFoundError):  # some stores answer 404: gone is gone
                return
            raise error from exc

    def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            self._client().head_object(Bucket=self.location.bucket, Key=name)
        except Exception as exc:  # noqa: BLE001
            error = self._error("HeadObject", name, exc)
            if isinstance(error, FileNotFoundError):
                return False
            raise error from exc
        return True

    def check_writable(self) -> None:
        """Put and delete a small probe object under the prefix, with short timeouts and
        no retries (a readiness probe must answer before a load balancer gives up)."""
        name = self._join(f".probe-{uuid.uuid4().hex}")
        client = self._client(probe=True)
        try:
            client.put_object(Bucket=self.location.bucket, Key=name, Body=b"ok")
        except Exception as exc:  # noqa: BLE001
            raise self._error("PutObject", name, exc) from exc
        try:
            client.delete_object(Bucket=self.location.bucket, Key=name)
        except Exception as exc:  # noqa: BLE001
            raise self._error("DeleteObject", name, exc) from exc

    # -- helpers ----------------------------------------------------------------------

    def _join(self, name: str) -> str:
        return f"{self.location.prefix}/{name}" if self.location.prefix else name

    def _name(self, key: str) -> str:
        """The object name of a blob key."""
        return self._join(_check_key(key))

    def _multipart(self, name: str, data: bytes) -> None:
        from boto3.s3.transfer import TransferConfig  # with boto3: see `_client`

        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=4,
            preferred_transfer_client="classic",
        )
        # Per-part SHA-256, verified by the server; s3transfer aborts the upload (the
        # parts already stored go with it) when a part or the completion fails.
        self._client().upload_fileobj(
            io.BytesIO(data),
            self.location.bucket,
            name,
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            Config=config,
        )

    def _client(self, *, probe: bool = False) -> BaseClient:
        client = self._clients.get(probe)
        if client is not None:
            return client
        with self._lock:
            if probe not in self._clients:
                self._clients[probe] = self._make_client(probe)
            return self._clients[probe]

    def _make_client(self, probe: bool) -> BaseClient:
        # boto3 loads its service models on import (~0.15 s): only when S3 is configured.
        import boto3
        from botocore.config import Config

        connect, read = self._timeouts
        config = Config(
            connect_timeout=2.0 if probe else connect,
            read_timeout=5.0 if probe else read,
            retries={"mode": "standard", "max_attempts": 1 if probe else 4},
            # MinIO, Ceph and test servers behind an endpoint URL take path-style
            # requests; virtual-host style needs a DNS name per bucket.
            s3={"addressing_style": "path" if self.location.endpoint else "auto"},
            max_pool_connections=16,
        )
        access_key, secret_key = self._credentials
        session = boto3.session.Session()  # clients from one session per store
        return session.client(
            "s3",
            endpoint_url=self.location.endpoint,
            region_name=self.location.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def _error(self, operation: str, name: str, exc: Exception) -> OSError:
        """The OSError a store failure becomes: FileNotFoundError for a missing key."""
        from botocore.exceptions import ClientError

        where = self.location.url
        if isinstance(exc, ClientError):
            # The call that failed: a multipart put may fail in UploadPart or
            # CompleteMultipartUpload.
            operation = exc.operation_name or operation
            err = exc.response.get("Error", {})
            code = str(err.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = str(err.get("Message") or "").strip()
            if code in ("NoSuchKey", "NotFound") or (code == "404" and operation != "PutObject"):
                return FileNotFoundError(errno.ENOENT, f"{where}: no such object", name)
            reason = f"the object store refused {operation}: {code or status}"
            detail = f"{where}: {operation} {name} refused: {code or status}"
            if message and message != code:
                detail += f" ({message})"
            if code == "NoSuchBucket":
                detail += "; create the bucket or fix RAGOPS_BLOB_URL"
            elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                detail += "; check RAGOPS_BLOB_ACCESS_KEY / RAGOPS_BLOB_SECRET_KEY and the policy"
            return _store_error(reason, detail)
        return _store_error(
            f"the object store failed {operation}: {exc.__class__.__name__}",
            f"{where}: {operation} {name} failed: {exc.__class__.__name__}: {exc}",
        )


def _store_error(
    reason: str, detail: str, cls: type[ObjectStoreError] = ObjectStoreError
) -> ObjectStoreError:
    error = cls(errno.EIO, reason)
    error.detail = detail
    return error


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
