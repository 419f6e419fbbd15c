"""ZIP uploads expand into documents; bombs, traversal, links and locked members don't."""

from __future__ import annotations

import zipfile

import pytest

from core.errors import ArchiveRejected
from ingest.archive import ArchiveLimits, check_container, expand_archive
from ingest.sniff import DOCX, PDF, ZIP, sniff_media_type
from tests.utils import hostile
from tests.utils.corpus import make_docx, make_pdf, make_zip

pytestmark = pytest.mark.unit

LIMITS = ArchiveLimits()


def test_members_become_documents_with_archive_paths() -> None:
    pdf = make_pdf(["Informe trimestral de ventas."])
    docx = make_docx("Пчёлы", ["Рабочие пчёлы собирают нектар."])
    data = make_zip(
        {"2024/q1.pdf": pdf, "docs/пчёлы.docx": docx, "empty/": b"", "__MACOSX/._q1.pdf": b"x"}
    )

    members = expand_archive(data, "reports.zip", limits=LIMITS)

    assert [path for path, _ in members] == [
        "reports.zip/2024/q1.pdf",
        "reports.zip/docs/пчёлы.docx",
    ]
    assert sniff_media_type(members[0][1], members[0][0]) == PDF
    assert sniff_media_type(members[1][1], members[1][0]) == DOCX


def test_nested_zip_within_depth_is_expanded() -> None:
    members = expand_archive(hostile.nested_zip(2), "outer.zip", limits=LIMITS)
    assert members == [("outer.zip/level2.zip/note.txt", b"Bottom of the archive.\n")]


def test_sniff_reports_plain_zip_only_when_archives_are_allowed() -> None:
    data = make_zip({"a.txt": b"hello"})
    assert sniff_media_type(data, "a.zip", allow_archive=True) == ZIP


@pytest.mark.parametrize(
    ("build", "guard", "message"),
    [
        (
            lambda: hostile.zip_bomb(inflated_mb=20),
            "ratio",
            r"member 'zeros.txt' expands \d+:1 \(\d+ -> 20971520 bytes; limit 100:1\)",
        ),
        (lambda: hostile.nested_zip(3), "depth", "archives nested more than 2 deep"),
        (lambda: hostile.traversal_zip(), "path", "'../../etc/cron.d/evil' points outside"),
        (lambda: hostile.traversal_zip("/etc/passwd"), "path", "points outside the archive"),
        (lambda: hostile.traversal_zip("C:\\Windows\\x.dll"), "path", "points outside"),
        (lambda: hostile.symlink_zip(), "link", "'passwd' is a symbolic link"),
        (lambda: hostile.encrypted_zip(), "encrypted", "'secret.txt' is encrypted"),
        (lambda: hostile.many_members_zip(1001), "members", "more than 1000 files \\(1001"),
        (lambda: b"PK\x03\x04" + b"\x00" * 100, "damaged", "not a readable ZIP archive"),
    ],
    ids=["bomb", "depth", "dotdot", "absolute", "drive", "symlink", "encrypted", "members", "junk"],
)
def test_guards(build, guard: str, message: str) -> None:
    with pytest.raises(ArchiveRejected, match=message) as caught:
        expand_archive(build(), "upload.zip", limits=LIMITS)
    assert caught.value.guard == guard
    assert caught.value.code == "archive_rejected"
    assert caught.value.message.startswith("upload.zip")


def test_total_size_guard_counts_nested_archives() -> None:
    member = b"a fairly compressible line of text\n" * 30_000  # ~1 MB, ratio ~50-100
    inner = make_zip({"big.txt": member})
    data = make_zip({"one.zip": inner, "two.zip": inner, "three.txt": member})
    limits = ArchiveLimits(max_total_bytes=2_500_000, max_ratio=1000)
    with pytest.raises(ArchiveRejected, match="exceed 2500000 bytes") as caught:
        expand_archive(data, "sizes.zip", limits=limits)
    assert caught.value.guard == "size"


def test_small_repetitive_member_is_not_a_bomb() -> None:
    data = make_zip({"dashes.txt": b"-" * 500_000})  # ratio ~1000:1, but under 1 MiB
    assert expand_archive(data, "ok.zip", limits=LIMITS)[0][1] == b"-" * 500_000


def test_member_lying_about_its_size_fails_the_crc() -> None:
    data = bytearray(make_zip({"a.txt": b"hello world " * 100}, compression=zipfile.ZIP_STORED))
    data[data.index(b"hello")] = ord("j")  # stored data no longer matches its CRC
    with pytest.raises(ArchiveRejected, match="member cannot be read") as caught:
        expand_archive(bytes(data), "crc.zip", limits=LIMITS)
    assert caught.value.guard == "damaged"


def test_office_containers_are_guarded_at_sniff_time() -> None:
    with pytest.raises(ArchiveRejected, match="'word/document.xml' expands") as bomb:
        sniff_media_type(hostile.docx_bomb(inflated_mb=40), "bomb.docx")
    assert bomb.value.guard == "ratio"
    with pytest.raises(ArchiveRejected, match="declares a DTD") as laughs:
        sniff_media_type(hostile.billion_laughs_docx(), "laughs.docx")
    assert laughs.value.guard == "xml"
    check_container(make_docx("Fine", ["An ordinary document."]), "fine.docx")
