"""A generated benchmark corpus: distinct documents in Markdown, text, HTML, DOCX and PDF,
in English, Spanish and Russian, each with one line of personal data (a name and an
e-mail address) so redaction has work to do.

Every document is built from a seeded random stream, so two runs see the same bytes.
PDFs are English or Spanish (the standard Helvetica font has no Cyrillic glyphs).

Example::

    docs = make_documents(500, words=600)
    docs[0].filename, docs[0].media_type, len(docs[0].data)
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from docx import Document as DocxDocument

from ingest.parse import pdf_from_objects

# Topic words and function words per language: enough variety for distinct chunks.
VOCABULARY: dict[str, tuple[str, str]] = {
    "en": (
        "magma eruption lava basalt crater hive forager nectar pollen queen press ink type "
        "guild paper sourdough starter flour crust oven lighthouse lens keeper beam harbour "
        "opening gambit pawn knight bishop castle endgame rook river valley glacier forest",
        "the of a and in to is was for on with as by at from that this which when where "
        "during after before because while",
    ),
    "es": (
        "magma erupción lava basalto cráter colmena abeja néctar polen reina imprenta tinta "
        "papel masa madre harina corteza horno faro lente guardián haz puerto apertura "
        "gambito peón caballo alfil enroque final torre río valle glaciar bosque",
        "el la los las de del que y en por para una un es con se al su sus como fue está "
        "son durante después antes porque mientras",
    ),
    "ru": (
        "магма извержение лава базальт кратер улей пчела нектар пыльца матка типография "
        "краска бумага закваска мука корка печь маяк линза смотритель луч гавань дебют "
        "гамбит пешка конь слон рокировка эндшпиль ладья река долина ледник лес",
        "и в на с по для что это как был была были из от до при после перед потому пока "
        "также очень где когда",
    ),
}
CONTACTS = {
    "en": "Contact Maria Lopez at maria{i}@example.org for details.",
    "es": "Para más detalles escriba a Lucía Fernández en lucia{i}@ejemplo.es.",
    "ru": "Подробности у Анны Ивановой: anna{i}@primer.ru.",
}
FORMATS = ("md", "txt", "html", "docx", "pdf")
MEDIA_TYPES = {
    "md": "text/markdown",
    "txt": "text/plain",
    "html": "text/html",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


@dataclass(frozen=True)
class BenchDocument:
    filename: str
    media_type: str
    language: str
    title: str
    paragraphs: tuple[str, ...]
    data: bytes

    @property
    def text(self) -> str:
        """The document's text as a hand-rolled pipeline would read it."""
        return "\n\n".join((self.title, *self.paragraphs))

    @property
    def words(self) -> int:
        return len(self.text.split())


def make_documents(n_docs: int, *, words: int = 600, seed: int = 0) -> list[BenchDocument]:
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        language = ("en", "es", "ru")[i % 3]
        fmt = FORMATS[(i // 3) % len(FORMATS)]
        if fmt == "pdf" and language == "ru":
            fmt = "docx"
        title, paragraphs = _text(rng, language, i, words)
        data = _render(fmt, title, paragraphs)
        docs.append(
            BenchDocument(
                filename=f"doc-{i:05d}-{language}.{fmt}",
                media_type=MEDIA_TYPES[fmt],
                language=language,
                title=title,
                paragraphs=tuple(paragraphs),
                data=data,
            )
        )
    return docs


def _text(rng: random.Random, language: str, i: int, words: int) -> tuple[str, list[str]]:
    topic, function = (v.split() for v in VOCABULARY[language])
    title = f"{rng.choice(topic).capitalize()} {i}"
    paragraphs: list[str] = []
    count = 0
    while count < words:
        sentences = []
        for _ in range(rng.randint(2, 5)):
            sentence = " ".join(
                rng.choice(topic if rng.random() < 0.5 else function)
                for _ in range(rng.randint(8, 18))
            )
            sentences.append(sentence.capitalize() + ".")
            count += len(sentence.split())
        paragraphs.append(" ".join(sentences))
    paragraphs.append(CONTACTS[language].format(i=i))
    return title, paragraphs


def _render(fmt: str, title: str, paragraphs: list[str]) -> bytes:
    if fmt == "md":
        return ("\n\n".join([f"# {title}", *paragraphs]) + "\n").encode()
    if fmt == "txt":
        return ("\n\n".join([title, *paragraphs]) + "\n").encode()
    if fmt == "html":
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        return (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1>{body}</body></html>"
        ).encode()
    if fmt == "docx":
        doc = DocxDocument()
        doc.add_heading(title, level=1)
        for p in paragraphs:
            doc.add_paragraph(p)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
    return _pdf([title, *paragraphs])


def _pdf(paragraphs: list[str], *, width: int = 90, lines_per_page: int = 50) -> bytes:
    """A text PDF (Helvetica, WinAnsi: English and Spanish), wrapped and paginated."""
    lines: list[str] = []
    for p in paragraphs:
        words, line = p.split(), ""
        for w in words:
            if len(line) + len(w) + 1 > width:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}".strip()
        lines += [line, ""]
    pages = [lines[i : i + lines_per_page] for i in range(0, len(lines), lines_per_page)]
    objects: list[bytes] = [b"", b""]  # catalog and page tree, filled in below
    font = len(objects) + 1
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    kids = []
    for page in pages:
        ops = [b"BT /F1 10 Tf 50 760 Td 13 TL"]
        for line in page:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(b"(" + escaped.encode("cp1252", errors="replace") + b") Tj T*")
        ops.append(b"ET")
        content = b"\n".join(ops)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        contents = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, contents)
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    return pdf_from_objects(objects)
