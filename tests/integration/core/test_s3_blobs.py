"""S3BlobStore against a real S3-protocol server over HTTP: moto's standalone server
(`python -m moto.server`), started once for the module on a free port; each test has its
own bucket.

What moto does not do, and so what these tests cannot show: moto stores the Content-MD5
and x-amz-checksum-sha256 a client sends without verifying them (S3 and MinIO answer
BadDigest on a mismatch and store nothing). The tests therefore check that every put
*sends* both (moto keeps the SHA-256 as the object's checksum, which the test reads
back), and that bytes damaged on the wire, which moto does store, are refused on `get`.
The failed multipart upload is a real server refusal: moto is started with a 6 MiB
minimum part size, so 5 MiB parts get EntityTooSmall at CompleteMultipartUpload, after
the parts are stored, the way S3 refuses parts under 5 MiB.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from core.blobs import (
    BlobCorrupted,
    LocalBlobStore,
    ObjectStoreError,
    S3BlobStore,
    blob_store,
)
from core.config import S3Location
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# moto refuses multipart parts (all but the last) below this at completion.
MOTO_MIN_PART = 6 * MiB
ACCESS, SECRET, REGION = "test-access", "test-secret", "us-east-1"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """`python -m moto.server` on a free port, in its own process (the API and workers
    of the scale-out test reach it over HTTP like any S3 endpoint)."""

    def __init__(self, log: Path, *, min_part_size: int = MOTO_MIN_PART) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(min_part_size)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"moto server exited with {self.proc.returncode}:\n"
                    + self.log_path.read_text(errors="replace")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"moto server not listening on {self.port} in {timeout}s")

    def client(self) -> Any:
        """A plain boto3 client: the test's hands behind the store's back."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS,
            aws_secret_access_key=SECRET,
        )

    def new_bucket(self) -> str:
        name = f"ragops-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def url(self, bucket: str, prefix: str = "") -> str:
        """The RAGOPS_BLOB_URL of a bucket on this server."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}&region={REGION}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.new_bucket()


def store(moto: MotoServer, bucket: str, prefix: str = "raw", **kw: Any) -> S3BlobStore:
    location = S3Location(bucket=bucket, prefix=prefix, endpoint=moto.endpoint, region=REGION)
    return S3BlobStore(location, access_key=ACCESS, secret_key=SECRET, **kw)


def objects(moto: MotoServer, bucket: str) -> list[str]:
    listed = moto.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def pending_uploads(moto: MotoServer, bucket: str) -> list[str]:
    return [
        u["Key"] for u in moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def sent(s3: S3BlobStore, operation: str) -> list[Any]:
    """Record the requests of one S3 operation the store sends from now on."""
    requests: list[Any] = []
    s3._client().meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: requests.append(request)
    )
    return requests


def test_round_trip_is_content_addressed_under_the_prefix(moto, bucket):
    s3 = store(moto, bucket)
    puts = sent(s3, "PutObject")
    data = b"Glaciers carve U-shaped valleys."
    key = sha(data)
    assert not s3.exists(key)
    s3.put(key, data)
    assert s3.exists(key) and s3.get(key) == data
    assert objects(moto, bucket) == [f"raw/{key}"]
    # Both checksums went with the bytes, for the server to verify before storing.
    headers = puts[0].headers
    assert headers["Content-MD5"].decode() == b64(hashlib.md5(data).digest())
    assert headers["x-amz-checksum-sha256"].decode() == b64(bytes.fromhex(key))
    head = moto.client().head_object(Bucket=bucket, Key=f"raw/{key}", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64(bytes.fromhex(key))

    s3.put(key, data)  # the same content again: still one object
    assert objects(moto, bucket) == [f"raw/{key}"]


def test_a_blob_above_the_threshold_goes_up_in_parts_each_with_its_checksum(moto, bucket):
    s3 = store(moto, bucket, multipart_threshold=1 * MiB, multipart_chunksize=MOTO_MIN_PART)
    parts = sent(s3, "UploadPart")
    data = os.urandom(2 * MOTO_MIN_PART + MiB)  # 13 MiB: parts of 6, 6 and 1 MiB
    key = sha(data)
    s3.put(key, data)
    assert len(parts) == 3
    assert all("x-amz-checksum-sha256" in p.headers for p in parts), [
        dict(p.headers) for p in parts
    ]
    head = moto.client().head_object(Bucket=bucket, Key=f"raw/{key}")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # a multipart object
    assert s3.get(key) == data
    assert pending_uploads(moto, bucket) == []

    small = b"below the threshold"
    s3.put(sha(small), small)
    assert len(parts) == 3, "a blob under the threshold is one PutObject"


def test_a_multipart_put_the_server_refuses_at_completion_leaves_nothing(moto, bucket):
    # 5 MiB parts: stored one by one, then CompleteMultipartUpload is EntityTooSmall.
    s3 = store(moto, bucket, multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(11 * MiB)
    key = sha(data)
    with pytest.raises(ObjectStoreError) as err:
        s3.put(key, data)
    assert err.value.strerror == (
        "the object store refused CompleteMultipartUpload: EntityTooSmall"
    ), str(err.value)
    assert bucket in str(err.value)
    assert objects(moto, bucket) == []
    assert pending_uploads(moto, bucket) == [], "the upload and its parts were aborted"
    assert not s3.exists(key)


def test_bytes_that_are_not_their_key_are_refused_before_anything_is_sent(moto, bucket):
    s3 = store(moto, bucket)
    puts = sent(s3, "PutObject")
    with pytest.raises(ValueError, match="is not the sha256 of its bytes"):
        s3.put(sha(b"one"), b"another")
    assert puts == [] and objects(moto, bucket) == []


def test_bytes_damaged_on_the_wire_are_refused_on_get(moto, bucket):
    """moto stores a body that does not match the checksums sent with it (S3 and MinIO
    would refuse the put); the store still never hands such bytes out."""
    s3 = store(moto, bucket)

    def flip_a_byte(request: Any, **_: Any) -> None:
        body = bytearray(request.body.getvalue())  # after the checksums were computed
        body[0] ^= 0xFF
        request.body = bytes(body)

    s3._client().meta.events.register("before-send.s3.PutObject", flip_a_byte)
    data = b"Ocean tides rise and fall twice a day."
    key = sha(data)
    s3.put(key, data)
    s3._client().meta.events.unregister("before-send.s3.PutObject", flip_a_byte)
    with pytest.raises(BlobCorrupted) as err:
        s3.get(key)
    assert "does not match its checksum" in err.value.strerror
    assert key in str(err.value)


def test_an_object_changed_behind_the_stores_back_is_a_clear_error(moto, bucket):
    s3 = store(moto, bucket)
    data = b"Saffron threads are stigmas of the crocus flower."
    key = sha(data)
    s3.put(key, data)
    # Rewritten with a matching checksum of its own: only the key can tell.
    moto.client().put_object(Bucket=bucket, Key=f"raw/{key}", Body=b"something else entirely")
    with pytest.raises(BlobCorrupted) as err:
        s3.get(key)
    message = str(err.value)
    assert f"s3://{bucket}/raw/{key}: the stored bytes hash to" in message
    assert sha(b"something else entirely") in message and "upload the file again" in message
    assert isinstance(err.value, OSError) and not isinstance(err.value, FileNotFoundError)


def test_a_missing_key_is_file_not_found_and_a_missing_bucket_is_not(moto, bucket):
    s3 = store(moto, bucket)
    key = sha(b"never stored")
    with pytest.raises(FileNotFoundError):
        s3.get(key)
    assert s3.exists(key) is False
    # Callers read FileNotFoundError as "the upload is gone" (a permanent job failure):
    # a misconfigured bucket must not look like that.
    gone = store(moto, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(OSError) as err:
        gone.get(key)
    assert not isinstance(err.value, FileNotFoundError)
    assert "NoSuchBucket" in str(err.value) and "RAGOPS_BLOB_URL" in str(err.value)
    with pytest.raises(ValueError, match="invalid blob key"):
        s3.get("../etc/passwd")


def test_delete_is_idempotent(moto, bucket):
    s3 = store(moto, bucket)
    data = b"Compost heaps need air and moisture."
    key = sha(data)
    s3.put(key, data)
    s3.delete(key)
    assert not s3.exists(key) and objects(moto, bucket) == []
    s3.delete(key)
    s3.delete(sha(b"never stored"))
    with pytest.raises(FileNotFoundError):
        s3.get(key)


def test_check_writable_leaves_nothing_and_names_what_is_wrong(moto, bucket):
    s3 = store(moto, bucket)
    s3.check_writable()
    s3.check_writable()
    assert objects(moto, bucket) == []

    with pytest.raises(ObjectStoreError, match="NoSuchBucket"):
        store(moto, f"missing-{uuid.uuid4().hex[:8]}").check_writable()

    closed = S3Location(bucket=bucket, endpoint=f"http://127.0.0.1:{free_port()}", region=REGION)
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match="EndpointConnectionError"):
        S3BlobStore(closed, access_key=ACCESS, secret_key=SECRET).check_writable()
    assert time.monotonic() - started < 5, "the readiness probe does not retry"


def test_settings_pick_the_store_and_refuse_bad_blob_urls(tmp_path, moto, bucket):
    local = make_settings(tmp_path / "data")
    assert isinstance(blob_store(local), LocalBlobStore)

    settings = make_settings(
        tmp_path / "data",
        blob_url=moto.url(bucket, "uploads/raw"),
        blob_access_key=ACCESS,
        blob_secret_key=SECRET,
    )
    s3 = blob_store(settings)
    assert isinstance(s3, S3BlobStore)
    assert s3.location == S3Location(bucket, "uploads/raw", moto.endpoint, REGION)
    data = b"Kelp forests shelter sea otters."
    s3.put(sha(data), data)
    assert objects(moto, bucket) == [f"uploads/raw/{sha(data)}"]
    assert not (tmp_path / "data" / "blobs").exists(), "nothing written on local disk"

    refusals = {
        "http://bucket/x": "is not an s3:// URL",
        "s3://Bad_Bucket": "is not a valid bucket name",
        "s3://bucket?endpoint=ftp://minio": "is not an http(s)://host[:port] URL",
        "s3://bucket?endpont=http://minio:9000": "unknown parameter(s) 'endpont'",
        "s3://key:secret@bucket": "must not hold credentials",
    }
    for url, message in refusals.items():
        with pytest.raises(ValidationError) as err:
            make_settings(tmp_path / "data", blob_url=url)
        assert message in str(err.value), str(err.value)
        assert "key:secret" not in err.value.errors()[0]["msg"], "our message never echoes it"
    with pytest.raises(ValidationError, match="set both RAGOPS_BLOB_ACCESS_KEY"):
        make_settings(tmp_path / "data", blob_url=moto.url(bucket), blob_access_key=ACCESS)
    with pytest.raises(ValidationError, match="must be a real secret in production"):
        make_settings(
            tmp_path / "data",
            environment="production",
            admin_key="k" * 16,
            blob_url=moto.url(bucket),
            blob_access_key="minioadmin",
            blob_secret_key="minioadmin",
        )


@pytest.mark.slow  # loads the models (shared with other tests of the session)
def test_the_api_stores_uploads_in_the_bucket_and_says_when_it_cannot(tmp_path, moto):
    """The real app on S3: a bucket that does not exist yet makes `/readyz` 503 naming
    it and an upload 503 with nothing stored; once it exists, uploads land in it."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.utils.components import SHARED_COMPONENTS

    bucket = f"ragops-{uuid.uuid4().hex[:12]}"  # not created yet
    settings = make_settings(
        tmp_path / "data",
        workers=0,
        blob_url=moto.url(bucket, "raw"),
        blob_access_key=ACCESS,
        blob_secret_key=SECRET,
    )
    notes = [f"Note {i}: sundials tell solar time by a shadow.\n".encode() for i in range(2)]
    files = [("files", (f"n{i}.txt", data, "text/plain")) for i, data in enumerate(notes)]
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503, r.text
        reason = r.json()["reasons"]["blobs_writable"]
        assert reason.startswith(f"ObjectStoreError: s3://{bucket}/raw: PutObject"), reason
        assert "NoSuchBucket" in reason

        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        r = client.post("/v1/kbs/kb/documents", files=files)
        assert r.status_code == 503, r.text
        message = r.json()["error"]["message"]
        assert "blob store could not be written" in message and "NoSuchBucket" in message
        assert bucket not in message, "the client is not told the storage layout"
        assert client.get("/v1/kbs/kb/documents").json()["total"] == 0

        moto.client().create_bucket(Bucket=bucket)
        assert client.get("/readyz").status_code == 200
        r = client.post("/v1/kbs/kb/documents", files=files)
        assert r.status_code == 202, r.text
        assert objects(moto, bucket) == sorted(f"raw/{sha(d)}" for d in notes)
        assert not settings.blob_dir.exists()
