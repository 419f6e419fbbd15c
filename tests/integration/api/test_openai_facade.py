"""The OpenAI-compatible façade through the official `openai` client against a real
uvicorn server running the app."""

import httpx
import openai
import pytest

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.answers import sample_files
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.samples import QUERIES
from tests.utils.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "facade-test-key"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("facade")
    settings = make_settings(tmp / "data", redaction_enabled=False, admin_key=KEY)
    with serve(create_app(settings, components=SHARED_COMPONENTS)) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            assert http.post("/v1/kbs", json={"name": "docs"}).status_code == 201
            files = [("files", (n, d, "application/octet-stream")) for n, d in sample_files(tmp)]
            assert http.post("/v1/kbs/docs/documents", files=files).status_code == 202
            wait_for_documents(http, "docs", expected=6)
            assert http.post("/v1/kbs", json={"name": "empty"}).status_code == 201
        yield url


@pytest.fixture
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)


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
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.body["code"] == "invalid_api_key"
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "docs"})
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
