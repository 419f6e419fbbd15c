"""Text in legacy code pages and BOM-less UTF-16 is read right; binary is still refused.

Every fixture is a sentence of ours encoded here, in English, Spanish and Russian, at
three lengths: one line (where detectors guess), a paragraph and a page.
"""

from __future__ import annotations

import codecs
import random
import zlib

import pytest

from core.errors import UnsupportedType
from ingest import encoding as encoding_module
from ingest.encoding import detect
from ingest.parse import ENCODING, UnstructuredParser
from ingest.sniff import CSV, HTML, TEXT, decode_text, decode_with_encoding, sniff_media_type

pytestmark = pytest.mark.unit

SENTENCES = {
    "en": [
        "The résumé review moved to Friday — don’t forget the “budget” slides.",
        "Our café on Main Street sells coffee for 3 € a cup, and the naïve barista smiles.",
        "In 2019 the council approved a new library; construction ended in late 2021.",
        "Please send the signed contract to the résumé office before noon.",
        "The river flooded twice this spring, so the bridge stayed closed for a week.",
        "Tickets cost £12 for adults and £6 for children under twelve.",
    ],
    "es": [
        "¿Dónde está la estación? ¡Aquí, señor!",
        "El niño pidió un café con leche y pagó 2,50 € en la cafetería de la esquina.",
        "La señora Muñoz dijo: “mañana llegará el camión con los muebles nuevos”.",
        "En otoño las montañas del norte de España se cubren de niebla y lluvia.",
        "Según el informe, la producción de aceite creció un 12 % durante el año pasado.",
        "¿Cuántos años tenía tu abuelo cuando construyó la casa junto al río?",
    ],
    "ru": [
        "Договор подписан в понедельник утром.",
        "Москва — столица России, крупнейший по численности населения город страны.",
        "Ёжик в тумане шёл к медвежонку пить чай с малиновым вареньем.",
        "Согласно отчёту, выручка компании выросла на 15 % по сравнению с прошлым годом.",
        "Поезд отправляется с третьего пути в 18:40, не опаздывайте!",
        "Весной река разлилась, и мост через неё закрыли на целую неделю.",
    ],
}

# What a code page cannot hold, written the way a typist would.
_STAND_INS = str.maketrans({"—": "-", "“": '"', "”": '"', "’": "'", "€": "EUR", "£": "GBP"})
# Code pages in which each language is written; Latin-1 and windows-1252 read alike
# unless a byte 0x80-0x9F (curly quotes, dashes, the euro) is present.
CODE_PAGES = {
    "en": ["cp1252", "latin-1"],
    "es": ["cp1252", "latin-1"],
    "ru": ["cp1251", "koi8-r", "cp866"],
}
SAME_TEXT = {"cp1252": {"cp1252", "iso8859-1"}, "latin-1": {"cp1252", "iso8859-1"}}


def _text(language: str, length: str) -> str:
    sentences = SENTENCES[language]
    if length == "line":
        return sentences[0]
    if length == "paragraph":
        return " ".join(sentences[1:4]) + "\n"
    return "\n\n".join(" ".join(sentences[i:] + sentences[:i]) for i in range(6)) + "\n"


def _encode(text: str, encoding: str) -> tuple[str, bytes]:
    """The text as it can be written in `encoding`, and its bytes."""
    try:
        return text, text.encode(encoding)
    except UnicodeEncodeError:
        fitted = text.translate(_STAND_INS)
        return fitted, fitted.encode(encoding)


def _accepted_names(encoding: str, data: bytes) -> set[str]:
    if encoding in SAME_TEXT and not any(0x80 <= b <= 0x9F for b in data):
        return SAME_TEXT[encoding]
    return {codecs.lookup(encoding).name}


LEGACY_CASES = [
    (language, length, code_page)
    for language, code_pages in CODE_PAGES.items()
    for length in ("line", "paragraph", "page")
    for code_page in code_pages
]


@pytest.mark.parametrize(("language", "length", "code_page"), LEGACY_CASES)
def test_legacy_code_pages_decode_to_the_original(
    language: str, length: str, code_page: str
) -> None:
    text, data = _encode(_text(language, length), code_page)
    assert not data.isascii()

    decoded = detect(data)

    assert decoded is not None
    assert decoded.text == text
    assert decoded.encoding in _accepted_names(code_page, data)
    assert sniff_media_type(data, "notes.txt") == TEXT
    assert decode_text(data) == text


@pytest.mark.parametrize(
    ("line", "code_page"),
    [
        ("Договор подписан в понедельник утром.", "cp1251"),  # 37 bytes
        ("Договор подписан в понедельник утром.", "koi8-r"),
        ("Договор подписан в понедельник утром.", "cp866"),
        ("Привет, как дела?", "cp1251"),
        ("Привет, как дела?", "koi8-r"),
        ("Привет, как дела?", "cp866"),
        ("Счёт № 15 оплачен.", "cp1251"),
        ("Año nuevo", "cp1252"),
        ("It’s 5 €.", "cp1252"),
        ("Él está aquí.", "latin-1"),
    ],
)
def test_one_short_line_is_enough(line: str, code_page: str) -> None:
    """Where a detector alone answers mac-cyrillic, Shift-JIS or cp1250."""
    data = line.encode(code_page)
    decoded = detect(data)
    assert decoded is not None
    assert decoded.text == line
    assert decoded.encoding in _accepted_names(code_page, data)


@pytest.mark.parametrize(
    ("text", "code_page"),
    [
        ("Zażółć gęślą jaźń. Polska leży w Europie Środkowej, stolicą jest Warszawa.", "cp1250"),
        # Reads as lower-case Cyrillic in cp1251; the letters are not Russian ones.
        ("Η Ελλάδα είναι χώρα της νοτιοανατολικής Ευρώπης. Πρωτεύουσα είναι η Αθήνα.", "cp1253"),
    ],
)
def test_other_languages_code_pages_come_from_the_detector(text: str, code_page: str) -> None:
    assert detect(text.encode(code_page)) == encoding_module.Decoded(text, code_page)


@pytest.mark.parametrize("language", ["en", "es", "ru"])
@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8"),
        ("utf-16", "utf-16-le"),  # Python writes a BOM and little-endian
        ("utf-16-le", "utf-16-le"),  # no BOM
        ("utf-16-be", "utf-16-be"),  # no BOM
        ("utf-32", "utf-32-le"),
    ],
)
def test_unicode_with_and_without_bom(language: str, codec: str, expected: str) -> None:
    for length in ("line", "paragraph", "page"):
        text = _text(language, length)
        decoded = detect(text.encode(codec))
        assert decoded is not None, (codec, length)
        assert (decoded.text, decoded.encoding) == (text, expected)


def test_bom_less_utf16_of_plain_ascii_is_text() -> None:
    data = "Just ASCII, written by Notepad.\r\n".encode("utf-16-be")
    assert sniff_media_type(data, "a.txt") == TEXT
    assert decode_with_encoding(data).encoding == "utf-16-be"


def test_valid_utf8_is_never_second_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    """UTF-8 is the fast path: no code page is scored and no detector runs."""

    def fail(data: bytes) -> None:
        raise AssertionError("legacy detection ran on UTF-8")

    monkeypatch.setattr(encoding_module, "_legacy", fail)
    for language in SENTENCES:
        text = _text(language, "page")
        assert decode_with_encoding(text.encode()) == encoding_module.Decoded(text, "utf-8")
    # Valid UTF-8 that happens to read as something else in cp1251 stays UTF-8.
    assert detect("Ð¿Ñ\u0080Ð¸".encode()) == encoding_module.Decoded("Ð¿Ñ\u0080Ð¸", "utf-8")


HTML_1252 = (
    "<!DOCTYPE html>\n<html><head><title>Menú del día</title></head>\n<body>\n"
    "<h1>Menú del día</h1>\n<p>¿Tiene hambre? El señor Núñez recomienda la paella: "
    "“la mejor de Valencia”, por sólo 12 €.</p>\n"
    "<p>Our café opens at 8 — don’t be late.</p>\n</body></html>\n"
)


def test_windows_1252_html_without_a_charset() -> None:
    data = HTML_1252.encode("cp1252")
    assert sniff_media_type(data, "menu.html") == HTML
    assert decode_with_encoding(data) == encoding_module.Decoded(HTML_1252, "cp1252")


@pytest.mark.parametrize(
    ("declaration", "codec", "expected"),
    [
        ('<meta charset="iso-8859-5">', "iso8859-5", "iso8859-5"),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
            "cp1251",
            "cp1251",
        ),
        ("<meta charset=KOI8-R>", "koi8-r", "koi8-r"),
        # Browsers read a page labelled Latin-1 as windows-1252, curly quotes included.
        ('<meta charset="iso-8859-1">', "cp1252", "cp1252"),
    ],
)
def test_a_declared_charset_wins(declaration: str, codec: str, expected: str) -> None:
    # In capitals, this line alone reads as well in cp1251 as in koi8-r.
    body = "<p>ВНИМАНИЕ: ДОГОВОР</p>" if codec != "cp1252" else "<p>“Año” — 5 €</p>"
    page = f"<html><head>{declaration}<title>x</title></head><body>{body}</body></html>"
    decoded = detect(page.encode(codec))
    assert decoded == encoding_module.Decoded(page, expected)


def test_a_wrong_declaration_falls_back_to_detection() -> None:
    page = HTML_1252.replace("<head>", '<head><meta charset="utf-8">')
    assert detect(page.encode("cp1252")) == encoding_module.Decoded(page, "cp1252")


RUSSIAN_TXT = (
    "Отчёт о работе склада за март\n\n"
    "В марте на склад поступило 1250 коробок, отгружено 1180. Остаток на 1 апреля — "
    "70 коробок.\n\n"
    "Замечания: погрузчик №2 требует ремонта, ворота 3 не закрываются до конца.\n"
).replace("—", "-")  # cp866 has no em dash


def test_russian_dos_text_in_cp866() -> None:
    data = RUSSIAN_TXT.encode("cp866")
    assert sniff_media_type(data, "otchet.txt") == TEXT
    assert decode_with_encoding(data) == encoding_module.Decoded(RUSSIAN_TXT, "cp866")


def test_cp1251_csv_is_still_csv() -> None:
    table = "Имя;Город;Сумма\nИван;Казань;100\nМария;Тверь;250\nПётр;Омск;75\n"
    data = table.encode("cp1251")
    assert sniff_media_type(data, "upload") == CSV
    assert decode_text(data) == table


_RANDOM = random.Random(8)
_BYTES = bytes(range(256)) * 4


@pytest.mark.parametrize(
    ("data", "detected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + _BYTES, "image/png (png)"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + _BYTES[::-1], "image/jpeg (jpg)"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + _BYTES, "application/x-executable (elf)"),
        (random.Random(7).randbytes(8192), "binary data"),
        # No NUL and few control bytes: only the readings can tell it is not text.
        (bytes(_RANDOM.randrange(0x20, 0x100) for _ in range(4096)), "binary data"),
        (bytes(_RANDOM.randrange(0x80, 0x100) for _ in range(4096)), "binary data"),
        (bytes([0xF6]) * 4096, "binary data"),  # reads as "6666..." in EBCDIC
        (zlib.compress(random.Random(10).randbytes(4096)), "binary data"),
        # NULs on one side only, as in UTF-16, but the other side is not text.
        (b"".join(n.to_bytes(2, "little") for n in range(300, 2348)), "binary data"),
    ],
    ids=["png", "jpeg", "elf", "random", "no-controls", "high", "one-byte", "zlib", "u16"],
)
def test_binary_is_still_refused(data: bytes, detected: str) -> None:
    assert detect(data) is None
    with pytest.raises(UnsupportedType) as caught:
        sniff_media_type(data, "photo.bin")
    assert caught.value.message == (
        f"photo.bin: unsupported content type (detected {detected}); supported: PDF, DOCX, "
        "PPTX, XLSX, ODT, RTF, HTML, Markdown, plain text, CSV, JSON, EML, MSG"
    )
    with pytest.raises(UnicodeDecodeError):
        decode_text(data)


@pytest.fixture(scope="module")
def parser() -> UnstructuredParser:
    return UnstructuredParser()


def test_parser_reads_cp866_text_and_records_the_encoding(parser: UnstructuredParser) -> None:
    pieces = parser.parse(RUSSIAN_TXT.encode("cp866"), media_type=TEXT, filename="отчёт.txt")
    assert [p.text for p in pieces] == [
        "Отчёт о работе склада за март",
        "В марте на склад поступило 1250 коробок, отгружено 1180. Остаток на 1 апреля - "
        "70 коробок.",
        "Замечания: погрузчик №2 требует ремонта, ворота 3 не закрываются до конца.",
    ]
    assert pieces[0].metadata[ENCODING] == "cp866"
    assert {p.metadata["language"] for p in pieces} == {"ru"}


def test_parser_reads_cp1252_html(parser: UnstructuredParser) -> None:
    pieces = parser.parse(HTML_1252.encode("cp1252"), media_type=HTML, filename="menu.html")
    text = "\n".join(p.text for p in pieces)
    assert "Menú del día" in text
    assert "¿Tiene hambre? El señor Núñez recomienda la paella: “la mejor de Valencia”" in text
    assert "12 €" in text
    assert pieces[0].metadata[ENCODING] == "cp1252"


def test_parser_leaves_utf8_unmarked(parser: UnstructuredParser) -> None:
    pieces = parser.parse(RUSSIAN_TXT.encode(), media_type=TEXT, filename="отчёт.txt")
    assert pieces[0].text == "Отчёт о работе склада за март"
    assert ENCODING not in pieces[0].metadata
