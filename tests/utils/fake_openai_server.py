"""A minimal OpenAI-compatible chat completions server backed by the REAL local model
(SmolLM2 via `retrieval.generators.local`): it stands in for a paid remote endpoint, so
the `openai` generator is tested over HTTP with the official client, end to end."""

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
            }

        def events():  # type: ignore[no-untyped-def]
            for piece in gen.stream(messages, **kwargs):
                chunk = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app
