"""An OpenAI-compatible chat completions server that answers ragas' judge prompts (and
our test-set generation prompt) with deterministic, schema-valid JSON computed from the
prompt's content. It stands in for a paid judge endpoint: the code under test (prompt
building, instructor parsing, ragas scoring, token accounting, error isolation) runs for
real over HTTP, and its scores follow the content, so a test can tell a faithful answer
from an unfaithful one.

The verdict rule: a statement is supported by a context when at least 75% of its
content words (4+ letters or digits) appear in the context.

Knobs on `app.state` (set by tests): `garbage[title] = n` answers the next n requests
for that output model with prose instead of JSON (-1: always); `answer` is what a plain
(non-JSON) chat request gets, i.e. what the `openai` answer generator receives;
`requests` lists (output model title or "answer", usage) per call, `verdicts`
(title, prompt input, JSON answered) per scripted judge answer.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MODEL = "scripted-judge"
API_KEY = "test-judge-key"

_WORD = re.compile(r"\w+")
_NONCOMMITTAL = ("i don't know", "not sure", "cannot answer", "no information")


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 3 or w.isdigit()]


def supported(statement: str, context: str) -> bool:
    words = content_words(statement)
    if not words:
        return False
    have = set(_WORD.findall(context.lower()))
    return sum(w in have for w in words) / len(words) >= 0.75


def sentences(text: str) -> list[str]:
    """Statements of a text: its sentences, without citation markers like "[2]"."""
    text = re.sub(r"\[\d+\]", " ", text)
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p.strip() for p in parts if len(content_words(p)) > 0]


def _prompt_input(prompt: str) -> dict[str, Any]:
    """The JSON after the last 'input:' of a ragas BasePrompt string."""
    start = prompt.rindex("\ninput: ") + len("\ninput: ")
    end = prompt.rindex("\nOutput:")
    return json.loads(prompt[start:end])


def verdicts(title: str, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON a careful judge would give, by output model."""
    if title == "StatementGeneratorOutput":
        return {"statements": sentences(data["answer"])}
    if title == "NLIStatementOutput":
        return {
            "statements": [
                {
                    "statement": s,
                    "reason": "its words appear in the context",
                    "verdict": int(supported(s, data["context"])),
                }
                for s in data["statements"]
            ]
        }
    if title == "AnswerRelevanceOutput":
        response = data["response"].strip()
        noncommittal = any(p in response.lower() for p in _NONCOMMITTAL)
        return {"question": response.rstrip(".!") + "?", "noncommittal": int(noncommittal)}
    if title == "ContextPrecisionOutput":
        useful = any(supported(s, data["context"]) for s in sentences(data["answer"]))
        return {"reason": "shared facts", "verdict": int(useful)}
    if title == "ContextRecallOutput":
        return {
            "classifications": [
                {
                    "statement": s,
                    "reason": "its words appear in the context",
                    "attributed": int(supported(s, data["context"])),
                }
                for s in sentences(data["answer"])
            ]
        }
    if title == "GeneratedCase":
        parts = sentences(data["passage"])
        used = len(data.get("avoid") or [])
        sentence = parts[used % len(parts)] if parts else data["passage"]
        topic = " ".join(sentence.split()[:6]).rstrip(".,;:")
        return {"question": f"What does the documentation say about {topic}?", "answer": sentence}
    raise KeyError(title)


def _schema_title(messages: list[dict[str, Any]]) -> str | None:
    """The output model instructor asks for: the last "title" of the JSON schema in its
    system message (pydantic puts the model's own title after its fields')."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    titles = re.findall(r'"title":\s*"(\w+)"', system)
    return titles[-1] if titles else None


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.garbage = {}
    app.state.answer = "The moon is made of green cheese and orbits Mars every Tuesday."
    app.state.requests = []
    app.state.verdicts = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        body = await request.json()
        messages = body["messages"]
        title = _schema_title(messages)
        if title is None:
            text, kind = app.state.answer, "answer"
        else:
            kind = title
            left = app.state.garbage.get(title, 0)
            if left:
                app.state.garbage[title] = left - 1 if left > 0 else left
                text = "Sure! I think the answer is yes, mostly."
            else:
                prompt = next(m["content"] for m in messages if m["role"] == "user")
                try:
                    data = _prompt_input(prompt)
                    text = json.dumps(verdicts(title, data))
                    app.state.verdicts.append((title, data, json.loads(text)))
                except (KeyError, ValueError) as exc:
                    return JSONResponse(
                        {"error": {"message": f"unscripted prompt {title}: {exc}"}}, 400
                    )
        usage = {
            "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
            "completion_tokens": len(text.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        app.state.requests.append((kind, usage))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }

    return app


def totals(app: FastAPI) -> dict[str, int]:
    """Calls and tokens the server answered (to compare with what a run recorded)."""
    rows = app.state.requests
    return {
        "calls": len(rows),
        "prompt_tokens": sum(u["prompt_tokens"] for _, u in rows),
        "completion_tokens": sum(u["completion_tokens"] for _, u in rows),
    }
