"""A minimal OpenAI-compatible chat completions server backed by the REAL local model
(SmolLM2 via `retrieval.generators.local`): it stands in for a paid remote endpoint, so
the `openai` generator is tested over HTTP with the official client, end to end.

It reports `usage` as the model's tokenizer counts it (in the final stream event when
asked with `stream_options.include_usage`), and records each in `app.state.usages`; set
`app.state.report_usage = False` to play a server that reports none."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from retrieval.generators.base import Message
from retrieval.generators.local import LocalGenerator

MODEL = "smollm2-135m-instruct"
API_KEY = "test-openai-key"


def make_app(generator: LocalGenerator | None = None) -> FastAPI:
    gen = generator or LocalGenerator(None)
    app = FastAPI()
    app.state.requests = []
    app.state.usages = []
    app.state.report_usage = True

    def count(messages: list[Message], text: str) -> dict[str, int] | None:
        if not app.state.report_usage:
            return None
        prompt, completion = gen.count_tokens(messages, text)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        app.state.usages.append(usage)
        return usage

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(
                {"error": {"message": "bad key", "type": "invalid_request_error"}}, 401
            )
        body = await request.json()
        app.state.requests.append(body)
        messages = [Message(m["role"], m["content"]) for m in body["messages"]]
        kwargs = {
            "max_tokens": body.get("max_tokens") or 32,
            "temperature": body.get("temperature") or 0.0,
        }
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.get("stream"):
            text = gen.generate(messages, **kwargs)
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": count(messages, text),
            }

        include_usage = (body.get("stream_options") or {}).get("include_usage")

        def events():  # type: ignore[no-untyped-def]
            head = {"id": cid, "object": "chat.completion.chunk", "created": created}
            pieces = []
            for piece in gen.stream(messages, **kwargs):
                pieces.append(piece)
                chunk = {
                    **head,
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            usage = count(messages, "".join(pieces).strip()) if include_usage else None
            if usage is not None:
                final = {**head, "model": MODEL, "choices": [], "usage": usage}
                yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
