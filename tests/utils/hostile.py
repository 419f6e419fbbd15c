"""Build hostile and broken uploads in memory: bombs, traversal names, locked and
truncated PDFs, junk, pathological text. Each is small to build (well under a second)
and small to hold, except where the point is size.

Example::

    data = zip_bomb()  # ~50 KB that inflates to 50 MB
"""

from __future__ import annotations

import io
import random
import stat
import zipfile

from tests.utils.corpus import _ZIP_TIME, make_docx, make_pdf, make_zip

LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua"
).split()


def zip_bomb(*, inflated_mb: int = 50) -> bytes:
    """One member of zeros: deflate shrinks it about 1000:1."""
    return make_zip({"zeros.txt": b"\0" * (inflated_mb * 1024 * 1024)})


def nested_zip(depth: int, inner: bytes = b"Bottom of the archive.\n") -> bytes:
    """`depth` archives inside each other: level1.zip/level2.zip/.../note.txt."""
    data = make_zip({"note.txt": inner})
    for level in range(depth - 1, 0, -1):
        data = make_zip({f"level{level + 1}.zip": data})
    return data


def traversal_zip(name: str = "../../etc/cron.d/evil") -> bytes:
    return make_zip({"ok.txt": b"Fine.\n", name: b"* * * * * root sh\n"})


def symlink_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("passwd", _ZIP_TIME)
        info.create_system = 3  # Unix, so the mode bits count
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return out.getvalue()


def encrypted_zip() -> bytes:
    """The encryption flag set on a member, patched into the local and central headers
    (zipfile cannot encrypt; the guard reads the flag from the directory, before any data)."""
    data = bytearray(make_zip({"secret.txt": b"not really ciphertext"}))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + flag_offset
        data[at] |= 0x1
    return bytes(data)


def many_members_zip(count: int) -> bytes:
    return make_zip({f"notes/{i:05d}.txt": b"x" for i in range(count)})


def docx_bomb(*, inflated_mb: int = 100) -> bytes:
    """A real DOCX whose `word/document.xml` is padded with whitespace to `inflated_mb`."""
    docx = make_docx("Bomb", ["Tiny text."])
    with zipfile.ZipFile(io.BytesIO(docx)) as src:
        parts = {info.filename: src.read(info) for info in src.infolist()}
    xml = parts["word/document.xml"]
    parts["word/document.xml"] = xml.replace(b"<w:body>", b"<w:body>" + b" " * (inflated_mb << 20))
    return make_zip(parts)


def billion_laughs_docx(levels: int = 10) -> bytes:
    """A DOCX whose document.xml declares the classic entity bomb and uses it in a run."""
    docx = make_docx("Laughs", ["Plain paragraph before the bomb."])
    with zipfile.ZipFile(io.BytesIO(docx)) as src:
        parts = {info.filename: src.read(info) for info in src.infolist()}
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    ]
    dtd = f"<!DOCTYPE w:document [{''.join(entities)}]>".encode()
    xml = parts["word/document.xml"]
    head, _, rest = xml.partition(b"?>")
    xml = head + b"?>" + dtd + rest
    xml = xml.replace(
        b"Plain paragraph before the bomb.",
        b"Plain paragraph before the bomb. &lol" + str(levels - 1).encode() + b";",
    )
    parts["word/document.xml"] = xml
    return make_zip(parts)


def encrypted_pdf(password: str = "hunter2") -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret plans for the harvest."])))
    writer.encrypt(password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def truncated_pdf() -> bytes:
    data = make_pdf(["Quarterly report.", "Second page of the report."])
    return data[: len(data) // 2]


def junk(size: int = 64 * 1024, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def long_line_text(size: int = 5 * 1024 * 1024, seed: int = 0) -> bytes:
    """One line of `size` bytes: words and full stops, no newline."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(LOREM) + ("." if rng.random() < 0.07 else "")
        words.append(word)
        length += len(word) + 1
    return " ".join(words).encode("ascii")[:size]


def deep_html(depth: int = 100_000) -> bytes:
    return (
        "<!DOCTYPE html><html><body><p>Visible intro.</p>"
        + "<div>" * depth
        + "Deep text."
        + "</div>" * depth
        + "</body></html>"
    ).encode()


def huge_csv(rows: int = 200_000) -> bytes:
    """~10 MB: id, city, amount, note per row."""
    cities = ["Madrid", "Москва", "London", "Sevilla", "Казань"]
    lines = ["id,city,amount,note"]
    lines += [f"{i},{cities[i % 5]},{i * 7 % 1000},row number {i}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def deep_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def hanging_parse(data: bytes, *, media_type: str, filename: str) -> list:
    """Stand-in for a parser stuck on a file (a pathological regex, a decompression
    loop), for `IsolatedParser(parse_function=...)`: bytes starting with HANG never
    return; anything else parses."""
    import time

    from ingest._parse_preload import parse

    while data.startswith(b"HANG"):
        time.sleep(1)
    return parse(data, media_type=media_type, filename=filename)


def crashing_parse(data: bytes, *, media_type: str, filename: str) -> list:
    """Stand-in for a parser bug in C code, for `IsolatedParser(parse_function=...)`:
    bytes starting with CRASH kill the worker with SIGSEGV; anything else parses."""
    import os
    import signal

    from ingest._parse_preload import parse

    if data.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return parse(data, media_type=media_type, filename=filename)
