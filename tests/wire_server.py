"""A real local HTTP server that speaks OpenAI's wire format, built from real recorded payloads.

Tests point a real ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client at ``WireServer().base_url``.
Every answer comes from llama-stack's public recordings in ``tests/fixtures/llama-stack/``; the
server only reshapes them (stream <-> JSON, usage chunk on demand, requested model name), it
never invents content where a real payload exists.  ``/v1/responses`` has no real recording, so it
is assembled from a real gpt-4o chat stream.

Which payload is served
-----------------------
``POST /v1/chat/completions``
    1. A recording whose request has the same ``model``, ``messages`` and ``tools`` is served as is.
    2. Otherwise, if the request has ``tools`` (and ``tool_choice`` is not ``"none"`` and the last
       message is not a tool result): a real gpt-4o stream that calls ``web_search`` (or
       ``knowledge_search`` when only that tool is offered).
    3. Otherwise a real gpt-4o text answer; after a ``knowledge_search`` tool result it is the
       answer that followed that call, else the one that followed the ``web_search`` call.
``POST /v1/completions``: exact ``model``+``prompt`` match, else a real 51-chunk llama stream
    (``stream: true``) or a real non-streamed ``Completion``.
``POST /v1/embeddings``: exact ``model``+``input`` match, else real text-embedding-3-small vectors,
    reused cyclically.
``GET /v1/models`` and ``GET /v1/models/{id}``: the union of the ``models-*.json`` recordings.
``POST /v1/responses``: JSON ``Response`` or the Responses SSE event sequence.
``POST /v1/responses/input_tokens``: ``{"object": "response.input_tokens", "input_tokens": n}``.
``POST /v1/audio/speech``: binary "audio" bytes derived from ``input`` (``audio/mpeg``, or the
    requested ``response_format``'s type); every byte value occurs, so it is not valid UTF-8.
``GET /v1/files/{id}/content``: binary file content derived from the id (``application/octet-stream``).

Error triggers
--------------
* ``Authorization: Bearer sk-bad`` -> 401 ``invalid_api_key``.
* ``"model": "wire-error-400" | "wire-error-401" | "wire-error-429" | "wire-error-500"``.
* ``"service_tier": "flex"`` -> the real recorded 400 "Invalid service_tier argument".
* Unknown path -> 404 ``Invalid URL (METHOD /path)``.

Azure-style paths (``/openai/deployments/{name}/...``) are served like ``/v1/...``.

Error responses carry ``x-should-retry: false`` (unless ``retryable_errors`` is true) so that
clients with default retries do not slow the tests down.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import math
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

JSON = dict[str, Any]
Payload = JSON | list[JSON]

FIXTURES_DIR = Path(__file__).parent / "fixtures" / "llama-stack"

# Named real recordings: (generation, file-name prefix).
WEB_SEARCH_CALL = ("head", "3eba936eb977")  # gpt-4o streams a web_search tool call
WEB_SEARCH_ANSWER = ("head", "2331aa9455bc")  # gpt-4o's text answer after that call's result
KNOWLEDGE_SEARCH_CALL = ("oct2025", "fc4c3dcdd162")  # gpt-4o streams a knowledge_search tool call
KNOWLEDGE_SEARCH_ANSWER = ("oct2025", "1cc394167676")  # gpt-4o's text answer after that result
DEFAULT_CHAT = WEB_SEARCH_ANSWER
COMPLETION_STREAM = ("head", "8567635651a5")  # 51 Completion chunks (llama3.2)
COMPLETION_JSON = ("head", "92d49675c903")  # a non-streamed Completion (llama3.2)
SERVICE_TIER_ERROR = ("head", "f300a8b24123")  # a real 400 BadRequestError
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"

TEST_API_KEY = "sk-test-wire"  # the key the conftest clients use
ERROR_MODELS = {"wire-error-400": 400, "wire-error-401": 401, "wire-error-429": 429, "wire-error-500": 500}
BAD_API_KEY = "sk-bad"

_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


# --------------------------------------------------------------------------------------------
# The corpus of real recordings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One llama-stack recording file, with ``__type__``/``__data__`` wrappers removed."""

    path: Path
    kind: str  # "chat", "completion", "embedding", "models" or "error"
    streaming: bool
    request: JSON
    response: Any
    exception_body: JSON | None = None


def _unwrap(value: Any) -> Any:
    """Return ``__data__`` of encoded SDK objects (recursively for lists), other values unchanged."""
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    if isinstance(value, dict) and "__data__" in value and "__type__" in value:
        return value["__data__"]
    return value


_KINDS = {
    "ChatCompletionChunk": "chat",
    "ChatCompletion": "chat",
    "Completion": "completion",
    "CreateEmbeddingResponse": "embedding",
    "Model": "models",
}


def _classify(raw_body: Any) -> str | None:
    """Name the kind of payload by its SDK type (llama-stack's ``endpoint`` is sometimes wrong)."""
    first = raw_body[0] if isinstance(raw_body, list) and raw_body else raw_body
    if not isinstance(first, dict):
        return None
    return _KINDS.get(str(first.get("__type__", "")).rsplit(".", 1)[-1])


def _load(path: Path) -> Recording | None:
    """Load one recording file, or None when it is not an OpenAI-API payload we can serve."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        request, response = data["request"], data["response"] or {}
    except (ValueError, KeyError, TypeError):
        return None
    body = request.get("body") if isinstance(request.get("body"), dict) else {}
    if response.get("is_exception"):
        exception_body = (response.get("exception_data") or {}).get("body")
        return Recording(path, "error", False, body, None, exception_body)
    kind = _classify(response.get("body"))
    if kind is None:
        return None
    raw = response["body"]
    streaming = isinstance(raw, list) and kind in ("chat", "completion")
    return Recording(path, kind, streaming, body, _unwrap(raw))


class Corpus:
    """All servable recordings under ``tests/fixtures/llama-stack`` (load with ``corpus()``)."""

    def __init__(self, recordings: list[Recording]) -> None:
        self.recordings = recordings

    def of_kind(self, kind: str) -> list[Recording]:
        return [rec for rec in self.recordings if rec.kind == kind]

    def named(self, name: tuple[str, str]) -> Recording:
        """The recording of generation ``name[0]`` whose file name starts with ``name[1]``."""
        generation, prefix = name
        for rec in self.recordings:
            rel = rec.path.relative_to(FIXTURES_DIR)
            if rel.parts[0] == generation and rec.path.name.startswith(prefix):
                return rec
        raise LookupError(f"no recording {generation}/…/{prefix}* in {FIXTURES_DIR}")

    def exact(self, kind: str, body: JSON, keys: Iterable[str]) -> Recording | None:
        """A recording whose request equals ``body`` on ``keys``; same stream-ness preferred."""
        wanted = _canonical({key: body.get(key) for key in keys})
        matches = [
            rec for rec in self.of_kind(kind) if _canonical({key: rec.request.get(key) for key in keys}) == wanted
        ]
        matches.sort(key=lambda rec: rec.streaming != bool(body.get("stream")))
        return matches[0] if matches else None

    def models(self) -> list[JSON]:
        """The union of all recorded model lists, first occurrence wins."""
        seen: dict[str, JSON] = {}
        for rec in sorted(self.of_kind("models"), key=lambda r: str(r.path)):
            for model in rec.response:
                seen.setdefault(model["id"], model)
        return list(seen.values())

    def embedding_pool(self, model: str = DEFAULT_EMBEDDING_MODEL) -> list[list[float]]:
        """Every recorded embedding vector of ``model``, in a stable order."""
        vectors: list[list[float]] = []
        for rec in sorted(self.of_kind("embedding"), key=lambda r: str(r.path)):
            if rec.response.get("model") == model:
                vectors.extend(item["embedding"] for item in rec.response["data"])
        return vectors


@functools.cache
def corpus() -> Corpus:
    """Load the recordings once per process."""
    loaded = (_load(path) for path in sorted(FIXTURES_DIR.rglob("*.json")))
    return Corpus([rec for rec in loaded if rec is not None])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Payload shaping helpers
# --------------------------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Token estimate (~4 characters per token) for usage that no recording states."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _content_text(content: Any) -> str:
    """Plain text of a message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def _prompt_text(body: JSON) -> str:
    """All text a request sends to the model (messages, prompt, or Responses input)."""
    if "messages" in body:
        return "\n".join(_content_text(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    prompt = body.get("prompt", body.get("input", ""))
    if isinstance(prompt, list):
        return "\n".join(p if isinstance(p, str) else _content_text(p.get("content")) for p in prompt)
    return str(prompt)


def chunk_text(chunk: JSON) -> str:
    """The generated text a stream chunk carries (content, completion text or tool arguments)."""
    parts: list[str] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        parts.append(choice.get("text") or delta.get("content") or "")
        for call in delta.get("tool_calls") or []:
            parts.append((call.get("function") or {}).get("arguments") or "")
    return "".join(parts)


def is_usage_chunk(chunk: JSON) -> bool:
    """True for the final ``choices: []`` chunk sent when ``include_usage`` is requested."""
    return not chunk.get("choices") and chunk.get("usage") is not None


def _usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _derived_usage(chunks: list[JSON], body: JSON) -> JSON:
    """Usage computed from a recorded stream: one token per text chunk; the prompt is estimated."""
    completion = sum(1 for chunk in chunks if chunk_text(chunk))
    return _usage(estimate_tokens(_prompt_text(body)), completion)


def _apply_usage_policy(chunks: list[JSON], body: JSON) -> list[JSON]:
    """Keep/append the usage chunk if ``stream_options.include_usage``, drop it otherwise."""
    include = bool((body.get("stream_options") or {}).get("include_usage"))
    content = [chunk for chunk in chunks if not is_usage_chunk(chunk)]
    if not include:
        return content
    if len(content) < len(chunks):
        return chunks
    template = {k: v for k, v in content[-1].items() if k not in ("choices", "usage", "obfuscation")}
    return [*content, {**template, "choices": [], "usage": _derived_usage(content, body)}]


def _set_model(payload: Payload, model: Any) -> Payload:
    """Rewrite the ``model`` field of the payload (or of every chunk) to the requested model."""
    if not isinstance(model, str) or not model:
        return payload
    for item in payload if isinstance(payload, list) else [payload]:
        if "model" in item:
            item["model"] = model
    return payload


# --------------------------------------------------------------------------------------------
# /v1/chat/completions
# --------------------------------------------------------------------------------------------


def _tool_names(body: JSON) -> set[str]:
    names = set()
    for tool in body.get("tools") or []:
        name = (tool.get("function") or {}).get("name") or tool.get("name")
        if name:
            names.add(name)
    return names


def _called_tool(messages: list[JSON]) -> str | None:
    """Name of the tool whose result is the last message (via its ``tool_call_id``)."""
    call_id = messages[-1].get("tool_call_id")
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            if call.get("id") == call_id:
                return str((call.get("function") or {}).get("name"))
    return None


def default_chat_recording(body: JSON) -> tuple[str, str]:
    """Pick the real gpt-4o stream used when no recording matches the request exactly."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    if body.get("tools") and body.get("tool_choice") != "none" and not after_tool:
        names = _tool_names(body)
        only_knowledge = "knowledge_search" in names and "web_search" not in names
        return KNOWLEDGE_SEARCH_CALL if only_knowledge else WEB_SEARCH_CALL
    if after_tool and _called_tool(messages) == "knowledge_search":
        return KNOWLEDGE_SEARCH_ANSWER
    return DEFAULT_CHAT


def chunks_to_chat_completion(chunks: list[JSON], body: JSON) -> JSON:
    """Assemble a ``ChatCompletion`` from a recorded stream, as the SDK's accumulator would."""
    choices: dict[int, JSON] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            acc = choices.setdefault(
                choice.get("index", 0),
                {"content": "", "role": "assistant", "tool_calls": {}, "finish_reason": None},
            )
            delta = choice.get("delta") or {}
            acc["content"] += delta.get("content") or ""
            acc["finish_reason"] = choice.get("finish_reason") or acc["finish_reason"]
            for call in delta.get("tool_calls") or []:
                slot = acc["tool_calls"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
    first = chunks[0]
    return {
        "id": first["id"],
        "object": "chat.completion",
        "created": first.get("created", 0),
        "model": first.get("model"),
        "choices": [
            {
                "index": index,
                "finish_reason": acc["finish_reason"] or "stop",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": acc["content"] or None,
                    "refusal": None,
                    "annotations": [],
                    "tool_calls": [acc["tool_calls"][i] for i in sorted(acc["tool_calls"])] or None,
                },
            }
            for index, acc in sorted(choices.items())
        ],
        "service_tier": first.get("service_tier"),
        "system_fingerprint": first.get("system_fingerprint"),
        "usage": usage or _derived_usage(chunks, body),
    }


def chat_completion_to_chunks(completion: JSON) -> list[JSON]:
    """Split a recorded ``ChatCompletion`` into role / content / finish chunks (plus usage)."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model"),
        "system_fingerprint": completion.get("system_fingerprint"),
    }
    chunks: list[JSON] = []
    for choice in completion["choices"]:
        message, index = choice["message"], choice.get("index", 0)
        calls = [{**call, "index": i} for i, call in enumerate(message.get("tool_calls") or [])]
        deltas = [
            {"role": "assistant", "content": ""},
            {"content": message.get("content") or "", "tool_calls": calls or None},
        ]
        for delta in deltas:
            chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
        chunks.append({**base, "choices": [finish]})
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def chat_payload(body: JSON) -> Payload:
    """What ``POST /v1/chat/completions`` serves for ``body``: a chunk list or a ChatCompletion."""
    found = corpus().exact("chat", body, ("model", "messages", "tools"))
    source = copy.deepcopy((found or corpus().named(default_chat_recording(body))).response)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        source = source if isinstance(source, dict) else chunks_to_chat_completion(source, body)
        message = source["choices"][0]["message"]
        message["content"] = structured_content(message["content"] or "", response_format)
    if body.get("stream"):
        chunks = source if isinstance(source, list) else chat_completion_to_chunks(source)
        return _set_model(_apply_usage_policy(chunks, body), body.get("model"))
    if isinstance(source, list):
        source = chunks_to_chat_completion(source, body)
    return _set_model(source, body.get("model"))


_JSON_DEFAULTS: JSON = {"integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}, "null": None}


def structured_content(text: str, response_format: JSON) -> str:
    """A ``json_schema`` answer: the real text in each string property of the schema (top level)."""
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    properties = schema.get("properties") or {}
    value = {
        name: text if spec.get("type") == "string" else copy.deepcopy(_JSON_DEFAULTS.get(spec.get("type"), text))
        for name, spec in properties.items()
    }
    return json.dumps(value)


# --------------------------------------------------------------------------------------------
# /v1/completions
# --------------------------------------------------------------------------------------------


def chunks_to_completion(chunks: list[JSON], body: JSON) -> JSON:
    """Assemble a ``Completion`` from a recorded stream of Completion chunks."""
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            texts[index] = texts.get(index, "") + (choice.get("text") or "")
            finish[index] = choice.get("finish_reason") or finish.get(index) or "stop"
    return {
        **{k: v for k, v in chunks[0].items() if k not in ("choices", "usage")},
        "choices": [
            {"index": i, "text": texts[i], "finish_reason": finish[i], "logprobs": None} for i in sorted(texts)
        ],
        "usage": usage or _derived_usage(chunks, body),
    }


def completion_to_chunks(completion: JSON) -> list[JSON]:
    """Stream a recorded ``Completion`` as one text chunk per choice plus a usage chunk."""
    base = {k: v for k, v in completion.items() if k not in ("choices", "usage")}
    chunks = [{**base, "choices": [choice], "usage": None} for choice in completion["choices"]]
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def completion_payload(body: JSON) -> Payload:
    """What ``POST /v1/completions`` serves for ``body``."""
    stream = bool(body.get("stream"))
    found = corpus().exact("completion", body, ("model", "prompt"))
    default = COMPLETION_STREAM if stream else COMPLETION_JSON
    source = copy.deepcopy((found or corpus().named(default)).response)
    if stream:
        chunks = source if isinstance(source, list) else completion_to_chunks(source)
        return _set_model(_apply_usage_policy(chunks, body), body.get("model"))
    if isinstance(source, list):
        source = chunks_to_completion(source, body)
    return _set_model(source, body.get("model"))


# --------------------------------------------------------------------------------------------
# /v1/embeddings
# --------------------------------------------------------------------------------------------


def _embedding_inputs(raw: Any) -> list[Any]:
    """Normalize ``input`` (string, list of strings, token list, list of token lists) to a list."""
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        return [raw]
    return list(raw) if isinstance(raw, list) else [raw]


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """OpenAI's ``dimensions``: truncate, then L2-normalize again."""
    if not dimensions or dimensions >= len(vector):
        return vector
    cut = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in cut)) or 1.0
    return [x / norm for x in cut]


def _encode_vector(vector: list[float], encoding_format: Any) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embedding_payload(body: JSON) -> JSON:
    """What ``POST /v1/embeddings`` serves: one real vector per input (cyclic reuse if needed)."""
    inputs = _embedding_inputs(body.get("input"))
    found = corpus().exact("embedding", {**body, "input": inputs}, ("model", "input"))
    if found is None:  # llama-stack sometimes recorded a bare string input
        found = corpus().exact("embedding", body, ("model", "input"))
    if found is not None:
        vectors = [item["embedding"] for item in found.response["data"]]
        usage = dict(found.response["usage"])
    else:
        vectors = corpus().embedding_pool()
        tokens = sum(estimate_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode_vector(
                _shorten(list(vectors[index % len(vectors)]), body.get("dimensions")), body.get("encoding_format")
            ),
        }
        for index in range(len(inputs))
    ]
    model = body.get("model") or (found.response["model"] if found else DEFAULT_EMBEDDING_MODEL)
    return {"object": "list", "data": data, "model": model, "usage": usage}


# --------------------------------------------------------------------------------------------
# /v1/models
# --------------------------------------------------------------------------------------------


def models_page(query: dict[str, str]) -> JSON:
    """``GET /v1/models`` with optional ``limit`` and ``after`` (an id) pagination."""
    models = copy.deepcopy(corpus().models())
    start = 0
    if query.get("after"):
        ids = [m["id"] for m in models]
        start = ids.index(query["after"]) + 1 if query["after"] in ids else len(ids)
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else len(models)
    page = models[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "has_more": start + len(page) < len(models),
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


# --------------------------------------------------------------------------------------------
# /v1/responses (built from a real gpt-4o chat stream)
# --------------------------------------------------------------------------------------------


def _response_tools(body: JSON) -> list[JSON]:
    tools = copy.deepcopy(body.get("tools") or [])
    for tool in tools:
        if tool.get("type") == "function":
            tool.setdefault("description", None)
            tool.setdefault("parameters", None)
            tool.setdefault("strict", True)
    return tools


def _response_object(body: JSON, ids: JSON, status: str, output: list[JSON], usage: JSON | None) -> JSON:
    """A ``Response`` object echoing the request's settings, like the real API does."""
    return {
        "id": ids["response"],
        "object": "response",
        "created_at": ids["created"],
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": _response_tools(body),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _response_source(body: JSON) -> tuple[list[JSON], JSON]:
    """The real chat stream's content chunks, and identifiers/usage derived from it."""
    chunks = corpus().named(DEFAULT_CHAT).response
    content = [c for c in chunks if not is_usage_chunk(c) and c["choices"][0]["delta"].get("content")]
    stem = str(chunks[0]["id"]).removeprefix("rec-")
    chat_usage = next((c["usage"] for c in chunks if is_usage_chunk(c)), None) or _derived_usage(chunks, body)
    prompt_details = chat_usage.get("prompt_tokens_details") or {}
    usage = {
        "input_tokens": chat_usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens", 0),
            "cache_write_tokens": prompt_details.get("cache_write_tokens", 0),
        },
        "output_tokens": chat_usage["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": (chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
        },
        "total_tokens": chat_usage["total_tokens"],
    }
    ids = {"response": f"resp_{stem}", "message": f"msg_{stem}", "created": chunks[0].get("created", 0)}
    return content, {"ids": ids, "usage": usage}


def _output_text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ids: JSON, status: str, parts: list[JSON]) -> JSON:
    return {"id": ids["message"], "type": "message", "status": status, "role": "assistant", "content": parts}


def response_payload(body: JSON) -> JSON:
    """The JSON ``Response`` served by ``POST /v1/responses`` without ``stream``."""
    content, meta = _response_source(body)
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    output = [_message_item(meta["ids"], "completed", [_output_text_part(text)])]
    return _response_object(body, meta["ids"], "completed", output, meta["usage"])


def response_events(body: JSON) -> list[JSON]:
    """The Responses SSE events (each with ``type`` and ``sequence_number``) for ``body``."""
    content, meta = _response_source(body)
    ids = meta["ids"]
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    where = {"item_id": ids["message"], "output_index": 0, "content_index": 0}
    done_item = _message_item(ids, "completed", [_output_text_part(text)])
    in_progress = _response_object(body, ids, "in_progress", [], None)
    events: list[JSON] = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {"type": "response.output_item.added", "output_index": 0, "item": _message_item(ids, "in_progress", [])},
        {"type": "response.content_part.added", **where, "part": _output_text_part("")},
    ]
    for chunk in content:
        delta = {"type": "response.output_text.delta", **where, "delta": chunk["choices"][0]["delta"]["content"]}
        delta["logprobs"] = []
        if chunk.get("obfuscation"):
            delta["obfuscation"] = chunk["obfuscation"]
        events.append(delta)
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _output_text_part(text)},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {
            "type": "response.completed",
            "response": _response_object(body, ids, "completed", [done_item], meta["usage"]),
        },
    ]
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> JSON:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _recorded_400() -> JSON:
    body = corpus().named(SERVICE_TIER_ERROR).exception_body or {}
    return {"error": {key: body.get(key) for key in ("message", "type", "param", "code")}}


def _bad_key_401(key: str) -> JSON:
    shown = key if len(key) <= 8 else f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"
    message = (
        f"Incorrect API key provided: {shown}. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )
    return error_body(message, "invalid_request_error", code="invalid_api_key")


def error_for_status(status: int, model: str = "", key: str = "") -> JSON:
    """The error body served for a ``wire-error-<status>`` model."""
    if status == 400:
        return _recorded_400()
    if status == 401:
        return _bad_key_401(key or BAD_API_KEY)
    if status == 429:
        message = (
            f"Rate limit reached for {model} in organization org-wire on tokens per min (TPM): "
            "Limit 30000, Used 30000, Requested 1. Please try again in 2ms. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        return error_body(message, "tokens", code="rate_limit_exceeded")
    message = "The server had an error while processing your request. Sorry about that!"
    return error_body(message, "server_error")


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any = None  # parsed body, or None
    request_id: str = ""


@dataclass
class Reply:
    """What to send back: a JSON body, or an SSE stream of ``events`` when ``events`` is not None."""

    status: int = 200
    body: Any = None
    events: list[JSON] | None = None
    named_events: bool = False  # Responses API: "event: <type>" lines, no [DONE]
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None  # a binary body, sent as it is with ``content_type``
    content_type: str = "application/octet-stream"


AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "opus": "audio/ogg", "flac": "audio/flac", "pcm": "audio/pcm"}


def binary_content(seed: str, size: int = 4096) -> bytes:
    """Deterministic bytes for ``seed`` that hold every byte value (so they are not UTF-8 text)."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes
    return bytes((i + digest[(i // 256) % len(digest)]) % 256 for i in range(size))


def speech_reply(body: JSON) -> Reply:
    """``POST /v1/audio/speech``: bytes derived from the input text and voice."""
    content = b"ID3" + binary_content(f"{body.get('voice')}:{body.get('input')}")
    return Reply(content=content, content_type=AUDIO_TYPES.get(str(body.get("response_format", "mp3")), "audio/mpeg"))


def file_content_reply(file_id: str) -> Reply:
    """``GET /v1/files/{id}/content``: the file's bytes, derived from its id."""
    return Reply(content=binary_content(f"file:{file_id}", 10_000))


def stamp_answer(payload: Payload, prefix: str) -> None:
    """Put ``prefix`` in front of a chat or text completion answer: of every choice's text in a
    JSON answer, of the first chunk that carries text in a stream."""
    for item in payload if isinstance(payload, list) else [payload]:
        stamped = False
        for choice in item.get("choices") or []:
            holder = choice.get("message") or choice.get("delta") or choice
            field_name = "content" if holder is not choice else "text"
            if isinstance(holder.get(field_name), str) and (holder[field_name] or not isinstance(payload, list)):
                holder[field_name] = prefix + holder[field_name]
                stamped = True
        if stamped and isinstance(payload, list):
            return


def responses_route(body: JSON) -> Payload:
    """``POST /v1/responses``: the event list when streaming, else the Response object."""
    return response_events(body) if body.get("stream") else response_payload(body)


def input_tokens_payload(body: JSON) -> JSON:
    """``POST /v1/responses/input_tokens``: the count, about 4 characters a token."""
    text = json.dumps([body.get("instructions"), body.get("input")])
    return {"object": "response.input_tokens", "input_tokens": max(1, len(text) // 4)}


POST_ROUTES: dict[str, Callable[[JSON], Payload]] = {
    "/v1/chat/completions": chat_payload,
    "/v1/completions": completion_payload,
    "/v1/embeddings": embedding_payload,
    "/v1/responses": responses_route,
    "/v1/responses/input_tokens": input_tokens_payload,
}


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so ``stop()`` can cut them all."""

    daemon_threads = True
    request_queue_size = 128  # many clients at once (threads, asyncio tasks) must not be refused
    block_on_close = False

    def __init__(self, wire: WireServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.wire = wire
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def close_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().close_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the handler already answered or the client went away; never print into test output

    def drop_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the WireServer for a Reply, and writes it."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 30  # an idle keep-alive connection never pins a thread for long
    # Malformed HTTP (answered by the stdlib's send_error) still gets OpenAI's error envelope.
    error_content_type = "application/json"
    error_message_format = (
        '{"error": {"message": "%(message)s", "type": "invalid_request_error", "param": null, "code": null}}'
    )

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    _started = False  # True once the status line is out (a 500 can no longer be sent)

    def _dispatch(self) -> None:
        self._started = False
        try:
            request = self._read_request()
            self._send(self.server.wire.handle(request), request.request_id)
        except _CONNECTION_ERRORS:
            self.close_connection = True
        except Exception as exc:  # a bug in the server: answer 500 instead of hanging the client
            self.close_connection = True
            if not self._started:
                body = error_body(f"wire server failure: {exc!r}", "server_error")
                try:
                    self._send(Reply(500, body), f"req_{uuid.uuid4().hex}")
                except OSError:
                    pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(data)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _read_request(self) -> ReceivedRequest:
        split = urlsplit(self.path)
        raw = self._read_body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = ReceivedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=raw,
            json=parsed,
            request_id=f"req_{uuid.uuid4().hex}",
        )
        self.server.wire.record(request)
        return request

    def _send(self, reply: Reply, request_id: str) -> None:
        self._started = True
        self.send_response(reply.status)
        for name, value in self.server.wire.reply_headers(request_id).items():
            self.send_header(name, value)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.content is not None:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)
            return
        if reply.events is None:
            data = json.dumps(reply.body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        if self.server.wire.gzip_streams:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream(reply)

    _gzip: Any = None  # a zlib compressor while a gzip stream is being written

    def _write_chunk(self, data: bytes) -> None:
        if self._gzip is not None:  # each event flushed on its own, so it arrives as it is sent
            if data:
                data = self._gzip.compress(data) + self._gzip.flush(zlib.Z_SYNC_FLUSH)
            else:  # the end: the gzip trailer, then the terminating empty chunk
                tail, self._gzip = self._gzip.flush(zlib.Z_FINISH), None
                self._write_chunk(tail)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, reply: Reply) -> None:
        """Write SSE events one HTTP chunk each, honoring chunk_delay and error_after_chunks."""
        wire = self.server.wire
        delay, cut = wire.chunk_delay, wire.error_after_chunks
        self._gzip = zlib.compressobj(wbits=31) if wire.gzip_streams else None
        try:
            self._stream_events(reply, wire, delay, cut)
        finally:
            self._gzip = None

    def _stream_events(self, reply: Reply, wire: WireServer, delay: float, cut: int | None) -> None:
        events = reply.events or []
        for number, event in enumerate(events):
            if cut is not None and number >= cut:
                return self._abort()
            if number and delay:
                time.sleep(delay)
            if number == 1 and wire.hold is not None:
                wire.hold.wait(timeout=30)
            head = f"event: {event['type']}\n" if reply.named_events else ""
            self._write_chunk(f"{head}data: {json.dumps(event)}\n\n".encode())
        if cut is not None and cut >= len(events):
            return self._abort()
        if not reply.named_events:
            if delay:
                time.sleep(delay)
            self._write_chunk(b"data: [DONE]\n\n")
        if wire.end_delay:
            time.sleep(wire.end_delay)
        self._write_chunk(b"")

    def _abort(self) -> None:
        """Close the connection mid-body (no terminating chunk): the client sees a broken stream."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# The public server object
# --------------------------------------------------------------------------------------------


class WireServer:
    """A real OpenAI-wire HTTP server on 127.0.0.1 with a random port.

    Attributes tests may change at any time:
      chunk_delay: seconds slept between SSE events (time-to-first-chunk stays ~0).
      error_after_chunks: cut every stream after this many events, without [DONE].
      retryable_errors: when False (default) error replies say ``x-should-retry: false``.
      count_answers: when True, the text of every chat or text completion answer (JSON, or the
        first text chunk of a stream) starts with ``[n] ``, n counting this server's answers
        from 1 (``answers`` is the count so far): a replay of the wrong occurrence shows.
      gzip_streams: SSE streams are sent with ``Content-Encoding: gzip``, flushed per event.
      hold: when set to a ``threading.Event``, every stream sends its first event, then waits for
        the event to be set (at most 30 s) before it sends the rest.
      end_delay: seconds slept between a stream's last event and the end of its body.
    """

    def __init__(
        self,
        *,
        chunk_delay: float = 0.0,
        error_after_chunks: int | None = None,
        retryable_errors: bool = False,
        count_answers: bool = False,
    ) -> None:
        self.chunk_delay = chunk_delay
        self.error_after_chunks = error_after_chunks
        self.retryable_errors = retryable_errors
        self.count_answers = count_answers
        self.answers = 0
        self.hold: threading.Event | None = None
        self.end_delay = 0.0
        self.gzip_streams = False
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> WireServer:
        """Start serving in a daemon thread (the recordings are loaded first)."""
        if self._httpd is not None:
            return self
        corpus()
        self._httpd = _HTTPServer(self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="wire-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the listening socket and cut open connections.

        Later connections to ``base_url`` are refused.  Calling ``stop()`` twice is harmless.
        """
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("WireServer was never started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (still the same after ``stop()``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # request log ----------------------------------------------------------------------------

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def reset(self) -> None:
        """Forget the logged requests."""
        with self._lock:
            self.requests.clear()

    @property
    def last_request(self) -> ReceivedRequest:
        with self._lock:
            return self.requests[-1]

    # what is served -------------------------------------------------------------------------

    @staticmethod
    def answer_for(body: JSON, endpoint: str = "/v1/chat/completions") -> Payload:
        """The exact payload served for a POST ``body``: a list of SSE data objects when
        ``body["stream"]`` is true (chunks, or Responses events), else the JSON object."""
        return POST_ROUTES[endpoint](copy.deepcopy(body))

    @staticmethod
    def answer_text(body: JSON, endpoint: str = "/v1/chat/completions") -> str:
        """The generated text served for ``body`` (content, completion text, or output_text)."""
        payload = WireServer.answer_for({**body, "stream": True}, endpoint)
        assert isinstance(payload, list)
        if endpoint == "/v1/responses":
            return "".join(e["delta"] for e in payload if e["type"] == "response.output_text.delta")
        return "".join(
            (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            for chunk in payload
            for choice in chunk.get("choices") or []
        )

    # routing --------------------------------------------------------------------------------

    def reply_headers(self, request_id: str) -> dict[str, str]:
        """Headers sent with every reply, before the Reply's own (a subclass speaks another API)."""
        return {"x-request-id": request_id, "openai-version": "2020-10-01"}

    def handle(self, request: ReceivedRequest) -> Reply:
        """Turn a received request into a Reply (errors first, then routes)."""
        reply = self._route(request)
        if reply.status >= 400 and not self.retryable_errors:
            reply.headers.setdefault("x-should-retry", "false")
        return reply

    def _route(self, request: ReceivedRequest) -> Reply:
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if key == BAD_API_KEY:
            return Reply(401, _bad_key_401(key))
        path = request.path.rstrip("/")
        if path.startswith("/openai/deployments/"):  # Azure: /openai/deployments/{name}/chat/completions
            path = "/v1/" + path.removeprefix("/openai/deployments/").partition("/")[2]
        if request.method == "GET" and path == "/v1/models":
            return Reply(body=models_page(request.query))
        if request.method == "GET" and path.startswith("/v1/models/"):
            return self._one_model(unquote(path.removeprefix("/v1/models/")))
        if request.method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            return file_content_reply(unquote(path.removeprefix("/v1/files/").removesuffix("/content")))
        if request.method == "POST" and path == "/v1/audio/speech" and isinstance(request.json, dict):
            return speech_reply(request.json)
        if request.method != "POST" or path not in POST_ROUTES:
            message = f"Invalid URL ({request.method} {request.path})"
            return Reply(404, error_body(message, "invalid_request_error"))
        body = request.json
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"  # noqa: E501
            return Reply(400, error_body(message, "invalid_request_error"))
        status = ERROR_MODELS.get(str(body.get("model")))
        if status is not None:
            return Reply(status, error_for_status(status, str(body.get("model")), key))
        if body.get("service_tier") == "flex":
            return Reply(400, _recorded_400())
        payload = POST_ROUTES[path](body)
        if self.count_answers and path in ("/v1/chat/completions", "/v1/completions"):
            with self._lock:
                self.answers += 1
                number = self.answers
            stamp_answer(payload, f"[{number}] ")
        if isinstance(payload, list):
            return Reply(events=payload, named_events=path == "/v1/responses")
        return Reply(body=payload)

    def _one_model(self, model_id: str) -> Reply:
        for model in corpus().models():
            if model["id"] == model_id:
                return Reply(body=copy.deepcopy(model))
        message = f"The model '{model_id}' does not exist"
        return Reply(404, error_body(message, "invalid_request_error", "model", "model_not_found"))
