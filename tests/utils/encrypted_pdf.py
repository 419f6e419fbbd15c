"""Encrypted PDFs built in code: `make_pdf`'s pages saved by pikepdf (qpdf) with an owner
password, an empty user password and print/copy restrictions, the way company archives
hold them; and one that needs a real user password.

Two R4 variants use one crypt filter for streams and another for strings (allowed by
the PDF spec, read by qpdf and PDF readers, refused by pdfminer: "Unsupported crypt
filter"). qpdf writes one filter for both, so they are patched into its output: the
pages carry no strings outside their (stream-encrypted) content, so the string filter
changes no other byte.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import pikepdf

from tests.utils.corpus import make_pdf

OWNER_PASSWORD = "archive-owner"

# name: pikepdf.Encryption options besides the passwords and permissions.
QPDF_VARIANTS: dict[str, dict] = {
    "rc4-128-r3": {"R": 3, "aes": False, "metadata": False},
    "aes-128-r4": {"R": 4, "aes": True},
    "aes-256-r6": {"R": 6},
}
_STD_CF = b"/CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV2 /Length 16 >> >>"
# name: (bytes of qpdf's AES-128 R4 dictionary, replacement)
MIXED_VARIANTS: dict[str, list[tuple[bytes, bytes]]] = {
    # Strings stored in clear, streams AES-128.
    "aes-128-r4-strings-identity": [(b"/StrF /StdCF", b"/StrF /Identity")],
    # Streams AES-128, strings RC4-128.
    "aes-128-r4-strings-rc4": [
        (
            _STD_CF,
            _STD_CF[:-2] + b"/StrCF << /AuthEvent /DocOpen /CFM /V2 /Length 16 >> >>",
        ),
        (b"/StrF /StdCF", b"/StrF /StrCF"),
    ],
}
VARIANTS = (*QPDF_VARIANTS, *MIXED_VARIANTS)


def _save(pages: Sequence[str], *, user: str = "", **options: object) -> bytes:
    restricted = pikepdf.Permissions(
        extract=False,
        accessibility=False,
        print_lowres=False,
        print_highres=False,
        modify_other=False,
    )
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(make_pdf(pages))) as pdf:
        pdf.save(
            out,
            encryption=pikepdf.Encryption(
                owner=OWNER_PASSWORD, user=user, allow=restricted, **options
            ),
        )
    return out.getvalue()


def owner_locked_pdf(pages: Sequence[str], variant: str) -> bytes:
    """Opens without a password; copying and printing are restricted."""
    if variant in QPDF_VARIANTS:
        return _save(pages, **QPDF_VARIANTS[variant])
    data = _save(pages, **QPDF_VARIANTS["aes-128-r4"])
    for old, new in MIXED_VARIANTS[variant]:
        data = _replace(data, old, new)
    return data


def user_locked_pdf(pages: Sequence[str], password: str = "hunter2") -> bytes:
    """Needs `password` to open."""
    return _save(pages, user=password, R=4, aes=True)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace `old` (once) and move the xref offsets behind it."""
    at = data.index(old)
    delta = len(new) - len(old)
    data = data[:at] + new + data[at + len(old) :]
    xref = data.rindex(b"\nxref\n") + 1
    assert xref > at, "expected a classic xref table after the patched dictionary"

    def shift(match: re.Match[bytes]) -> bytes:
        offset = int(match[1])
        return b"%010d" % (offset + delta if offset > at else offset) + match[2]

    table = re.sub(rb"(\d{10})( \d{5} n)", shift, data[xref:])
    table = re.sub(rb"startxref\n(\d+)", lambda m: b"startxref\n%d" % (int(m[1]) + delta), table)
    return data[:xref] + table
