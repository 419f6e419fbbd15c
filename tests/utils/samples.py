"""The bundled sample corpus and its labelled queries, built fresh by fixtures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (query, expected top document) — mirrors samples/QUERIES.md
QUERIES = [
    ("What is a pyroclastic flow and how fast does it move?", "volcanoes.pdf"),
    ("How do worker bees tell each other where flowers are?", "honeybees.docx"),
    ("Who invented movable metal type in Europe, and when?", "printing_press.html"),
    ("How often should I feed my sourdough starter?", "sourdough.md"),
    ("How does a Fresnel lens make a lighthouse visible so far away?", "lighthouses.pptx"),
    ("What does Black play in the Sicilian Defence?", "chess_openings.txt"),
]


def build_corpus(out_dir: Path) -> list[Path]:
    """Write the six multi-format sample documents (PDF, DOCX, PPTX, HTML, MD, TXT)."""
    spec = importlib.util.spec_from_file_location(
        "build_samples", ROOT / "samples" / "build_samples.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(out_dir)
