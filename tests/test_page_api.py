"""What a careful user of the page's API and the embeddings API trips on (issue 22), against a real server."""

from __future__ import annotations

import json
import os

import pytest
from conftest import BUNDLE
from test_server import Server, library  # noqa: F401 - the module's fixture, shared

pytestmark = pytest.mark.slow  # a real `mediasearch serve` process over an indexed library


@pytest.fixture(scope="module")
def server(library):  # noqa: F811
    lib, _, env = library
    running = Server(lib, env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    yield running
    running.stop()


def token_count(texts: list[str]) -> int:
    """Tokens as the text tower reads them, counted with the tokenizers library itself (BOS and EOS included)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(BUNDLE / "tokenizer.json"))
    return sum(min(len(tokenizer.encode(t, add_special_tokens=True).ids), 77) for t in texts)


def test_the_models_list_names_the_model_without_a_local_path(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/ai/v1", api_key="unused")
    ids = [m.id for m in client.models.list()]
    assert ids == [BUNDLE.name], "a local bundle is named by its folder's name"
    raw = server.get("/ai/v1/models").text
    assert str(BUNDLE) not in raw and not any(os.path.isabs(i) for i in ids)
    answer = client.embeddings.create(model=ids[0], input="a dog")
    assert answer.model == BUNDLE.name


def test_another_model_is_not_found_in_openais_envelope(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/ai/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="gpt-4", input="a dog")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "gpt-4" in caught.value.message
    body = server.post("/ai/v1/embeddings", json={"model": {"no": "hash"}, "input": "x"})
    assert body.status_code == 404 and body.json()["message"], "a model that is not a string is not a 500"
    for name in ("antflydb/clipclap", "clipclap", BUNDLE.name):  # the model card's name works for any bundle
        assert server.post("/ai/v1/embeddings", json={"model": name, "input": "x"}).status_code == 200


def test_usage_counts_the_text_tokens(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/ai/v1", api_key="unused")
    texts = ["one", "a dog barking at the postman", "word " * 100]  # the last is cut at 77 tokens
    answer = client.embeddings.create(model="antflydb/clipclap", input=texts)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == token_count(texts)
    assert token_count(texts) > 77


def test_an_upload_error_names_the_file_the_user_sent(server):
    response = server.post("/api/search", files={"file": ("my notes.txt", b"not a picture at all", "text/plain")})
    body = response.json()
    assert response.status_code == 422 and set(body) == {"error", "message"}, body
    assert "my notes.txt" in body["message"] and "example-" not in json.dumps(body), body
    missing = server.get("/api/files/abc")  # the issue's own example: Starlette's 404, answered as README says
    assert missing.status_code == 404 and set(missing.json()) == {"error", "message"}


def test_the_server_remembers_no_query_text(server, library):  # noqa: F811
    """README's Privacy: only `query` remembers texts; what the page and the API are asked is never written."""
    from pathlib import Path

    _, _, env = library
    secret = "the server keeps no secret phrase"
    assert server.get("/api/search", params={"q": secret}).status_code == 200
    assert server.post("/ai/v1/embeddings", json={"input": secret}).status_code == 200
    cache = Path(env["MEDIASEARCH_CACHE"])
    assert [p for p in cache.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()] == []
