"""The OpenAI-compatible façade through the official `openai` client against a real
uvicorn server running the app: models, chat (stream and not), `usage` per generator
(the `openai` one against an OpenAI-compatible server backed by the packaged SmolLM2),
and the limits and checks at the edge (README, "OpenAI-compatible API")."""

import time

import httpx
import openai
import pytest

from api.app import create_app
from api.limits import MAX_JSON_BODY_BYTES, MAX_QUERY_CHARS
from api.routes.openai_compat import MAX_CHAT_CHARS
from retrieval.generators.base import Message
from tests.conftest import make_settings
from tests.utils import fake_openai_server
from tests.utils.answers import sample_files
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.samples import QUERIES
from tests.utils.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "facade-test-key"
OFF_TOPIC = "Who won the 1998 football world cup?"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_settings(
        tmp_path_factory.mktemp("facade") / "data",
        redaction_enabled=False,
        admin_key=KEY,
        openai_api_key=fake_openai_server.API_KEY,
        openai_model=fake_openai_server.MODEL,
    )


@pytest.fixture(scope="module")
def local(settings):
    """The app's own local generator (one loaded model serves the app and the fake)."""
    gen = SHARED_COMPONENTS.generator(settings, "local")
    gen.warm_up()
    return gen


@pytest.fixture(scope="module")
def fake_openai(local):
    app = fake_openai_server.make_app(local)
    with serve(app) as url:
        yield app, f"{url}/v1"


@pytest.fixture(scope="module")
def embedder(settings):
    """The KBs' embedding model: its tokenizer counts extractive answers."""
    return SHARED_COMPONENTS.embedder(settings, None)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, settings, fake_openai):
    tmp = tmp_path_factory.mktemp("facade-files")
    settings = settings.model_copy(update={"openai_base_url": fake_openai[1]})
    with serve(create_app(settings, components=SHARED_COMPONENTS)) as url:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        ) as http:
            assert http.post("/v1/kbs", json={"name": "docs"}).status_code == 201
            files = [("files", (n, d, "application/octet-stream")) for n, d in sample_files(tmp)]
            assert http.post("/v1/kbs/docs/documents", files=files).status_code == 202
            wait_for_documents(http, "docs", expected=6)
            assert http.post("/v1/kbs", json={"name": "empty"}).status_code == 201
        yield url


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_list_knowledge_bases_and_versions(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["docs", "docs@1", "empty"]


def test_chat_completion_answers_with_citations(client):
    completion = client.chat.completions.create(
        model="docs",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Tell me about bread."},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": QUERIES[0][0]},
        ],
    )
    assert completion.object == "chat.completion" and completion.model == "docs"
    message = completion.choices[0].message
    assert message.role == "assistant" and "pyroclastic" in message.content
    assert completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra
    assert extra["citations"][0]["filename"] == "volcanoes.pdf"
    assert extra["index_version"] == 1 and extra["generator"] == "extractive"
    assert completion.id == f"chatcmpl-{extra['answer_id']}"


def test_streaming_chat_completion(client):
    stream = client.chat.completions.create(
        model="docs@1", messages=[{"role": "user", "content": QUERIES[3][0]}], stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "starter" in text.lower() or "feed" in text.lower()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["filename"] == "sourdough.md"
    assert len({c.id for c in chunks}) == 1


def test_generator_can_be_chosen_with_extra_body(client):
    completion = client.chat.completions.create(
        model="docs",
        messages=[{"role": "user", "content": QUERIES[1][0]}],
        max_tokens=12,
        extra_body={"generator": "local"},
    )
    assert completion.model_extra["generator"] == "local" and completion.choices[0].message.content


def test_errors_have_openai_shape(client, base_url):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "q"}])
    assert info.value.body["code"] == "model_not_found" and "GET /v1/models" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="docs@9", messages=[{"role": "user", "content": "q"}])
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="docs", messages=[])
    assert info.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="docs", messages=[{"role": "assistant", "content": "no question"}]
        )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="docs", messages=[{"role": "user", "content": "q"}], extra_body={"generator": "x"}
        )
    assert "extractive, local, openai" in info.value.message
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.body["code"] == "invalid_api_key"
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "docs"}, timeout=60)
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture
def http(base_url):
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as c:
        yield c


def ask(client, question=QUERIES[0][0], **kwargs):
    return client.chat.completions.create(
        model=kwargs.pop("model", "docs"),
        messages=[{"role": "user", "content": question}],
        **kwargs,
    )


def test_models_retrieve_returns_the_listed_model(client, http):
    listed = {m.id: m for m in client.models.list()}
    for model_id in ("docs", "docs@1", "empty"):
        model = client.models.retrieve(model_id)
        assert model == listed[model_id] and model.object == "model"
    for unknown in ("nope", "docs@2", "docs@99999999999999999999", "docs@²"):
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve(unknown)
        assert info.value.body["code"] == "model_not_found"
        assert info.value.body["param"] == "model"
    assert http.get("/v1/models/").json()["error"]["code"] == "model_not_found"
    # KB ids are not model ids.
    kb_id = http.get("/v1/kbs/docs").json()["id"]
    assert http.get(f"/v1/models/{kb_id}").status_code == 404
    # The model registry below /v1/models/registry is still reached.
    registry = http.get("/v1/models/registry")
    assert registry.status_code == 200 and all("kind" in m for m in registry.json()["data"])


def test_usage_of_the_extractive_generator_counts_with_the_embedding_tokenizer(client, embedder):
    plain = ask(client)
    assert plain.usage is not None and plain.model_extra["generator"] == "extractive"
    usage = plain.usage
    assert usage.completion_tokens == embedder.count_tokens(plain.choices[0].message.content)
    assert usage.prompt_tokens > usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # History is part of the prompt sent to the generator: more turns, more prompt tokens.
    turns = [
        {"role": "user", "content": "Tell me about bread."},
        {"role": "assistant", "content": "Sourdough bread rises with a starter."},
    ]
    longer = client.chat.completions.create(
        model="docs", messages=[*turns, {"role": "user", "content": QUERIES[0][0]}]
    )
    assert longer.choices[0].message.content == plain.choices[0].message.content
    assert longer.usage.completion_tokens == usage.completion_tokens
    assert longer.usage.prompt_tokens > usage.prompt_tokens


def test_unanswerable_question_sends_no_prompt(client, embedder):
    completion = ask(client, OFF_TOPIC)
    assert completion.choices[0].message.content.startswith("I don't know")
    assert completion.usage.prompt_tokens == 0
    assert completion.usage.completion_tokens == embedder.count_tokens(
        completion.choices[0].message.content
    )


def test_streaming_usage_only_when_asked(client):
    expected = ask(client).usage
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage == expected
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    plain = list(ask(client, stream=True))
    assert all(c.usage is None and c.choices for c in plain)


def test_usage_of_the_local_generator_is_its_tokenizers(client, local):
    kwargs = {"max_tokens": 12, "extra_body": {"generator": "local"}}
    completion = ask(client, QUERIES[1][0], **kwargs)
    text = completion.choices[0].message.content
    usage = completion.usage
    assert usage.completion_tokens == local.count_tokens([Message("user", "q")], text)[1]
    assert 0 < usage.completion_tokens <= 12 and usage.prompt_tokens > 100
    chunks = list(
        ask(client, QUERIES[1][0], stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage == usage


def test_usage_of_the_openai_generator_is_what_the_endpoint_reports(
    client, fake_openai, local, embedder
):
    app, _ = fake_openai
    kwargs = {"max_tokens": 12, "extra_body": {"generator": "openai"}}
    completion = ask(client, QUERIES[1][0], **kwargs)
    assert completion.model_extra["generator"] == "openai"
    assert completion.usage.model_dump(exclude_none=True) == app.state.usages[-1]
    sent = app.state.requests[-1]
    prompt, _ = local.count_tokens([Message(m["role"], m["content"]) for m in sent["messages"]], "")
    assert completion.usage.prompt_tokens == prompt
    chunks = list(
        ask(client, QUERIES[1][0], stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    assert app.state.requests[-1]["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage.model_dump(exclude_none=True) == app.state.usages[-1]
    # An endpoint that reports nothing: counted with the embedding tokenizer instead.
    app.state.report_usage = False
    try:
        quiet = ask(client, QUERIES[1][0], **kwargs)
    finally:
        app.state.report_usage = True
    assert quiet.usage.completion_tokens == embedder.count_tokens(quiet.choices[0].message.content)
    assert quiet.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        ([{"type": "text", "text": 5}], "messages[1].content[0].text", "invalid_type"),
        ([{"type": "text", "text": None}], "messages[1].content[0].text", "invalid_type"),
        ([{"type": "text", "text": ["a"]}], "messages[1].content[0].text", "invalid_type"),
        ([{"type": "text"}], "messages[1].content[0].text", "invalid_type"),
        (
            [{"type": "text", "text": "ok"}, {"type": "image_url", "image_url": {"url": "x"}}],
            "messages[1].content[1].type",
            "invalid_value",
        ),
        (["plain"], "messages[1].content[0]", "invalid_type"),
        (5, "messages[1].content", "invalid_type"),
        ({"type": "text", "text": "q"}, "messages[1].content", "invalid_type"),
    ],
)
def test_content_parts_are_checked_by_type(client, content, param, code):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="docs",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": content},
            ],
        )
    assert info.value.body["param"] == param and info.value.body["code"] == code
    assert param in info.value.message


def test_text_parts_are_the_question(client):
    parts = [
        {"type": "text", "text": QUERIES[3][0][:20]},
        {"type": "text", "text": QUERIES[3][0][20:]},
    ]
    completion = client.chat.completions.create(
        model="docs", messages=[{"role": "user", "content": parts}]
    )
    assert completion.model_extra["citations"][0]["filename"] == "sourdough.md"


def test_sizes_are_limited_like_the_other_query_routes(client, http):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, "x" * (MAX_QUERY_CHARS + 1))
    assert info.value.body["code"] == "string_above_max_length"
    assert info.value.body["param"] == "messages[0].content"
    history = [{"role": "assistant", "content": "y" * MAX_QUERY_CHARS}] * (
        MAX_CHAT_CHARS // MAX_QUERY_CHARS
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="docs", messages=[*history, {"role": "user", "content": "q"}]
        )
    assert info.value.body["code"] == "context_length_exceeded"
    # A body over the byte cap: 413 from its Content-Length, before it is read...
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, "z" * 2_000_000)
    assert info.value.status_code == 413 and info.value.body["code"] == "too_large"
    assert time.monotonic() - started < 5

    # ...and without one (chunked), reading stops at the cap.
    def chunks():
        for _ in range(2 * MAX_JSON_BODY_BYTES // 65536):
            yield b" " * 65536

    r = http.post("/v1/chat/completions", content=chunks())
    assert r.status_code == 413 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_deep_nesting_is_a_fast_400(http):
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "docs", "messages": [{"role": "user", "content": "q", "x": ' + b"{" * 100_000,
        b'{"model": "docs", "messages": [{"role": "user", "content": "q"}], "tools": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    ):
        started = time.monotonic()
        r = http.post("/v1/chat/completions", content=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
        assert "deeper than" in r.json()["error"]["message"]
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": 2**70}, "seed"),
        ({"top_k": 51}, "top_k"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"temperature": -1}, "temperature"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"stream": True, "stream_options": {"unknown": True}}, "stream_options.unknown"),
        ({"prompt": "default@99999999999999999999"}, "prompt"),
        ({"messages": [{"role": "user", "content": "q"}] * 300}, "messages"),
        ({"messages": [{"role": "robot", "content": "q"}]}, "messages[0].role"),
        ({"model": None}, "model"),
    ],
)
def test_parameters_are_bounded(http, extra, param):
    body = {"model": "docs", "messages": [{"role": "user", "content": "q"}], **extra}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert (
        r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"
    )


def test_huge_version_in_a_model_id_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        ask(client, model="docs@99999999999999999999")
    assert info.value.body["code"] == "model_not_found"
