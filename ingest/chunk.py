"""Chunking with llama-index's SentenceSplitter, measured in the embedding model's own
tokens so that no chunk is ever longer than what the model embeds (all-MiniLM-L6-v2
silently truncates at 256 tokens; a default tiktoken-sized chunk would lose half)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.types import Piece, StageReport

Tokenize = Callable[[str], list[int]]


class SentenceChunker:
    """Groups consecutive elements of one page and section, then splits them on sentence
    boundaries into chunks of at most `chunk_size` tokens with `chunk_overlap` overlap.

    Each output piece carries `page_number`, `section` and `position` metadata and its
    exact `token_count`.

    Example::

        chunker = SentenceChunker(embedder.tokenize, chunk_size=200, chunk_overlap=32,
                                  max_tokens=embedder.max_tokens)
        chunks = chunker(cleaned_elements, report)
    """

    name = "chunk"

    def __init__(
        self, tokenize: Tokenize, *, chunk_size: int, chunk_overlap: int, max_tokens: int
    ) -> None:
        if chunk_size > max_tokens:
            raise ValueError(
                f"chunk_size {chunk_size} exceeds the embedding model's limit of {max_tokens} "
                "tokens; the rest of each chunk would be silently truncated"
            )
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size); got {chunk_overlap}")
        self.tokenize = tokenize
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_tokens = max_tokens
        self._splitter: Any = None

    @property
    def config(self) -> dict[str, Any]:
        return {
            "splitter": "sentence",
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "unit": "model tokens",
        }

    @property
    def splitter(self) -> Any:
        if self._splitter is None:
            from llama_index.core.node_parser import SentenceSplitter

            self._splitter = SentenceSplitter(
                chunk_size=self.chunk_size,
                chunk_overlap=self.chunk_overlap,
                tokenizer=self.tokenize,
                paragraph_separator="\n\n",
            )
        return self._splitter

    def _groups(self, pieces: list[Piece]) -> list[tuple[str, dict[str, Any]]]:
        groups: list[tuple[list[str], dict[str, Any]]] = []
        for piece in pieces:
            meta = {
                "page_number": piece.metadata.get("page_number"),
                "section": piece.metadata.get("section"),
                "language": piece.metadata.get("language"),
            }
            if groups and groups[-1][1] == meta:
                groups[-1][0].append(piece.text)
            else:
                groups.append(([piece.text], meta))
        return [("\n\n".join(texts), meta) for texts, meta in groups]

    def _hard_split(self, text: str) -> list[str]:
        """Last resort for a 'sentence' longer than the budget (tables, long URLs): pack
        whole words up to `chunk_size` tokens, cutting any single over-long word."""
        words: list[str] = []
        for word in text.split():
            while len(self.tokenize(word)) > self.chunk_size:
                cut = max(1, len(word) // 2)
                while cut > 1 and len(self.tokenize(word[:cut])) > self.chunk_size:
                    cut //= 2
                words.append(word[:cut])
                word = word[cut:]
            if word:
                words.append(word)
        out: list[str] = []
        current: list[str] = []
        for word in words:
            if current and len(self.tokenize(" ".join([*current, word]))) > self.chunk_size:
                out.append(" ".join(current))
                current = []
            current.append(word)
        if current:
            out.append(" ".join(current))
        return out

    def __call__(self, pieces: list[Piece], report: StageReport) -> list[Piece]:
        out: list[Piece] = []
        for text, meta in self._groups(pieces):
            for chunk_text in self.splitter.split_text(text):
                parts = [chunk_text]
                if len(self.tokenize(chunk_text)) > self.chunk_size:
                    parts = self._hard_split(chunk_text)
                    report.add(self.name, "hard_splits")
                for part in parts:
                    part = part.strip()
                    if not part:
                        continue
                    n = len(self.tokenize(part))
                    out.append(
                        Piece(text=part, metadata={**meta, "position": len(out)}, token_count=n)
                    )
        report.add(self.name, "chunks", len(out))
        return out
