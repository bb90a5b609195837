"""A real local HTTP server that speaks Anthropic's wire format (the Messages API).

Tests point a real ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` client at
``AnthropicWireServer().base_url`` (``http://127.0.0.1:PORT``: the SDK adds ``/v1/...``).  The
HTTP plumbing (threads, chunked SSE, ``chunk_delay``, ``error_after_chunks``, ``hold``,
``gzip_streams``, ``stop()`` cutting open connections, the request log with every header) is
``tests/wire_server.py``'s; this module only decides what is answered.

No real Anthropic recording ships with this repository, so the answers are composed here, in the
exact shapes the API sends (the ``anthropic`` SDK's ``types`` and Anthropic's documented event
sequence): ``msg_01…`` / ``toolu_01…`` / ``req_011…`` identifiers, usage with the cache fields and
``service_tier``, and a ``ping`` after the first ``content_block_start`` as the API sends it.  The
same request always gets the same answer and ids (they are derived from the request), so a test can
compute what the SDK must see with ``AnthropicWireServer.answer_for(body)``; a streamed answer and
the JSON answer to the same request are the same message (same id), as ``get_final_message()``
shows.

What is served
--------------
``POST /v1/messages``
    JSON ``Message``, or with ``"stream": true`` the SSE sequence ``message_start``,
    ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``, or
    ``input_json_delta`` for a tool's input), ``content_block_stop``, ..., ``message_delta``
    (``stop_reason`` and usage), ``message_stop``; every event named (``event: <type>``).
    1. ``tools`` offered (and ``tool_choice`` not ``none``) and the last user turn is not a
       ``tool_result``: a short text block, then a ``tool_use`` block calling the first tool (or
       the one ``tool_choice`` names) with an input built from its ``input_schema``;
       ``stop_reason: "tool_use"``.
    2. The last user turn holds ``tool_result`` blocks: an answer that quotes the results.
    3. A prompt starting with ``Write a long`` (``LONG_PROMPT``): a long answer
       (``LONG_STREAM_EVENTS`` events reach the SDK when streamed).
    4. Otherwise the answer of ``ANSWERS`` for the last user text, else ``DEFAULT_ANSWER``.
``POST /v1/messages/count_tokens``: ``{"input_tokens": n}`` (about 4 characters a token).
Bedrock's ``POST /model/{model}/invoke`` and Vertex's ``POST /v1/projects/{p}/locations/{r}/
    publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict``, ``count-tokens``)
    are answered as ``/v1/messages`` is, with the model the path names.
``GET /v1/models``: ``MODELS``, paged with ``limit`` (default 20), ``after_id``, ``before_id``
    (``data``, ``has_more``, ``first_id``, ``last_id``); ``GET /v1/models/{id}``.
``/v1/messages/batches``: create (POST), retrieve, list (paged like models), ``cancel``, and
    ``results`` (JSONL, one line per request, served once a batch was retrieved: a batch is
    ``in_progress`` when created and ``ended`` from its first retrieval on).

Errors (``{"type": "error", "error": {"type", "message"}, "request_id"}``, the ``request-id``
header, ``x-should-retry: false`` unless ``retryable_errors``)
---------------------------------------------------------------------------------------------
* ``"model": "wire-error-<status>"`` for a status in ``ERROR_TYPES`` (400, 401, 403, 404, 413,
  429, 500, 529); 429 also sends ``retry-after``.
* The key ``BAD_API_KEY`` (as ``x-api-key`` or ``Authorization: Bearer``), or no key at all -> 401.
* ``max_tokens`` missing from ``/v1/messages``, or ``messages`` missing -> 400, as the API says it.
* ``"model": "wire-echo-auth"``: 401 with a message quoting the ``Authorization`` header received.
* ``"model": "wire-error-stream"`` with ``stream``: the stream starts, then an ``error`` event
  (``overloaded_error``), as the API does mid-stream.
* An unknown path -> 404 ``not_found_error``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
from typing import Any

from wire_server import JSON, ReceivedRequest, Reply, WireServer

TEST_API_KEY = "sk-ant-test-wire"  # the key the tests' anthropic clients use
BAD_API_KEY = "sk-ant-bad"
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
ANTHROPIC_VERSION = "2023-06-01"

ERROR_TYPES = {
    400: ("invalid_request_error", "messages: text content blocks must be non-empty"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: wire-error-404"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
STREAM_ERROR_MODEL = "wire-error-stream"

ANSWERS = {
    "Hello, Claude": "Hello! It's nice to meet you. How can I help you today?",
    "Hello, world!": "Hello, world! It's great to hear from you. What would you like to talk about or work on today?",
    "What is the capital of France?": "The capital of France is Paris.",
    "In one sentence, what is a notebook?": (
        "A notebook is an interactive document that mixes runnable code, its outputs and prose, "
        "so you can explore, explain and share an analysis in one place."
    ),
}
DEFAULT_ANSWER = (
    "I'd be happy to help. Recording an API call once and replaying it later keeps a notebook "
    "reproducible: the same inputs give the same outputs, with no key and no network."
)
LONG_PROMPT = "Write a long essay about reproducible notebooks."

# What the tests ask: a model, two conversations and a tool.
MODEL = "claude-sonnet-4-5-20250929"
HELLO = [{"role": "user", "content": "Hello, Claude"}]
WEATHER = [{"role": "user", "content": "What is the weather like in San Francisco?"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state"}},
        "required": ["location"],
    },
}
LONG_STREAM_EVENTS = 473  # events the SDK yields (the wire has one ``ping`` more), as many as openai's bench

# What GET /v1/models lists, newest first (as the API orders them).
MODELS: list[JSON] = [
    {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": created,
        "lifecycle": "active",
        "max_input_tokens": 200000,
        "max_tokens": max_tokens,
    }
    for model_id, name, created, max_tokens in [
        ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", 64000),
        ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", 64000),
        ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 64000),
        ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z", 32000),
        ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z", 32000),
        ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z", 64000),
        ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z", 64000),
        ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z", 8192),
        ("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07T00:00:00Z", 4096),
    ]
]

_LONG_TEXT = (
    "A notebook that records its calls once can replay them forever, offline, with the same "
    "streamed tokens; reviewers read the answers in the diff and CI runs every cell again."
)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def make_id(prefix: str, seed: str, length: int = 24) -> str:
    """An Anthropic-style id (``msg_01…``, ``toolu_01…``, ``msgbatch_01…``) derived from ``seed``."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return f"{prefix}_01{''.join(chars)}"


def estimate_tokens(text: str) -> int:
    """Token estimate (~4 characters a token)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text") or "")
    if block.get("type") == "tool_result":
        return _content_text(block.get("content"))
    if block.get("type") == "tool_use":
        return _canonical(block.get("input"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(_block_text(block) for block in content)
    return _block_text(content)


def prompt_text(body: JSON) -> str:
    """Everything the request sends to the model: system, messages, tool definitions."""
    parts = [_content_text(body.get("system"))]
    parts += [_content_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
    parts += [_canonical(tool) for tool in body.get("tools") or []]
    return "\n".join(part for part in parts if part)


def input_tokens(body: JSON) -> int:
    return estimate_tokens(prompt_text(body)) + 4 * len(body.get("messages") or [])


def _usage(body: JSON, output_tokens: int) -> JSON:
    return {
        "input_tokens": input_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def split_text(text: str, words: int = 2) -> list[str]:
    """Text deltas as the API streams them: a few words each, spaces kept in front."""
    pieces = re.findall(r"\s*\S+", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)] or [""]


def split_json(text: str, size: int = 12) -> list[str]:
    """``partial_json`` fragments of a tool's input: an empty one first, as the API sends."""
    return ["", *(text[i : i + size] for i in range(0, len(text), size))]


# --------------------------------------------------------------------------------------------
# /v1/messages: the answer as content blocks
# --------------------------------------------------------------------------------------------


def _last_user(body: JSON) -> JSON:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return next((m for m in reversed(messages) if m.get("role") == "user"), {})


def _tool_results(message: JSON) -> list[JSON]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]


def _tool_names_by_id(body: JSON) -> dict[str, str]:
    names = {}
    for message in body.get("messages") or []:
        for block in message.get("content") or [] if isinstance(message.get("content"), list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
    return names


_SAMPLE_VALUES: JSON = {
    "location": "San Francisco, CA",
    "city": "Paris",
    "unit": "celsius",
    "query": None,  # the user's question
    "expression": "2 + 2",
}


def tool_input(tool: JSON, question: str) -> JSON:
    """An input for ``tool`` that fits its ``input_schema`` (its required properties, else all)."""
    schema = tool.get("input_schema") or {}
    properties: JSON = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    values: JSON = {}
    for name in names:
        spec = properties.get(name) or {}
        if spec.get("enum"):
            values[name] = spec["enum"][0]
        elif spec.get("type") in ("integer", "number"):
            values[name] = 3
        elif spec.get("type") == "boolean":
            values[name] = True
        else:
            sample = _SAMPLE_VALUES.get(name, question)
            values[name] = question if sample is None else sample
    return values


def _chosen_tool(body: JSON) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    return tools[0]


def answer_blocks(body: JSON) -> tuple[list[JSON], str]:
    """The content blocks (complete) and the stop reason of the answer to ``body``."""
    user = _last_user(body)
    results = _tool_results(user)
    seed = _canonical(body.get("messages"))
    if results:
        names = _tool_names_by_id(body)
        quoted = "; ".join(
            f"{names.get(str(r.get('tool_use_id')), 'the tool')} returned: {_content_text(r.get('content'))}"
            for r in results
        )
        text = f"I checked, and {quoted}. Let me know if you need anything else."
        return [{"type": "text", "text": text}], "end_turn"
    question = _content_text(user.get("content"))
    tool = _chosen_tool(body)
    if tool is not None:
        call = {
            "type": "tool_use",
            "id": make_id("toolu", seed),
            "name": tool["name"],
            "input": tool_input(tool, question),
        }
        if (body.get("tool_choice") or {}).get("type") in ("tool", "any"):
            return [call], "tool_use"
        preface = {"type": "text", "text": f"I'll use the {tool['name']} tool to answer that."}
        return [preface, call], "tool_use"
    long = question.startswith(LONG_PROMPT[:12])
    text = long_answer() if long else ANSWERS.get(question.strip(), DEFAULT_ANSWER)
    return [{"type": "text", "text": text}], "end_turn"


def long_answer(events: int = LONG_STREAM_EVENTS) -> str:
    """A text whose stream is ``events`` SSE events long (two words per text delta)."""
    # The SDK skips ``ping``; it yields message_start, content_block_start, the deltas,
    # content_block_stop, message_delta and message_stop.
    deltas = events - 5
    words: list[str] = []
    vocabulary = re.findall(r"\S+", _LONG_TEXT)
    while len(words) < 2 * deltas:
        words.append(vocabulary[len(words) % len(vocabulary)])
    return " ".join(words[: 2 * deltas])


def _message(body: JSON, content: list[JSON], stop_reason: str | None, output_tokens: int) -> JSON:
    return {
        "model": body.get("model") or DEFAULT_MODEL,
        "id": make_id("msg", _canonical({k: v for k, v in body.items() if k != "stream"})),
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(body, output_tokens),
    }


def _output_tokens(blocks: list[JSON]) -> int:
    return sum(estimate_tokens(b.get("text") or _canonical(b.get("input"))) for b in blocks)


def message_payload(body: JSON) -> JSON:
    """The JSON ``Message`` served for ``body`` without ``stream``."""
    blocks, stop_reason = answer_blocks(body)
    return _message(body, blocks, stop_reason, _output_tokens(blocks))


def message_events(body: JSON) -> list[JSON]:
    """The SSE events (``type`` in each) served for ``body`` with ``stream: true``."""
    blocks, stop_reason = answer_blocks(body)
    start = _message(body, [], None, 1)
    events: list[JSON] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            empty: JSON = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"])]
        else:
            empty = {**block, "input": {}}
            fragments = split_json(json.dumps(block["input"]))
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in fragments]
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas]
        events.append({"type": "content_block_stop", "index": index})
    usage = {
        k: v for k, v in _usage(body, _output_tokens(blocks)).items() if k not in ("cache_creation", "service_tier")
    }
    events.append(
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage}
    )
    events.append({"type": "message_stop"})
    return events


def stamp_answer(payload: JSON | list[JSON], prefix: str) -> None:
    """Put ``prefix`` in front of the first text of a Message, or of a stream's first text delta."""
    if isinstance(payload, dict):
        for block in payload["content"]:
            if block["type"] == "text":
                block["text"] = prefix + block["text"]
                return
        return
    for event in payload:
        delta = event.get("delta") or {}
        if event["type"] == "content_block_delta" and delta.get("type") == "text_delta":
            delta["text"] = prefix + delta["text"]
            return


# --------------------------------------------------------------------------------------------
# Errors and pages
# --------------------------------------------------------------------------------------------


def error_body(type_: str, message: str, request_id: str) -> JSON:
    """Anthropic's error envelope."""
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}


def error_reply(status: int, request_id: str, message: str | None = None) -> Reply:
    type_, default = ERROR_TYPES[status]
    reply = Reply(status, error_body(type_, message or default, request_id))
    if status == 429:
        reply.headers["retry-after"] = "17"
    return reply


def page(items: list[JSON], query: dict[str, str], default_limit: int = 20) -> JSON:
    """One page of ``items`` for ``limit``, ``after_id`` and ``before_id``."""
    ids = [item["id"] for item in items]
    start, stop = 0, len(items)
    if query.get("after_id"):
        start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
    if query.get("before_id"):
        stop = ids.index(query["before_id"]) if query["before_id"] in ids else 0
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else default_limit
    if query.get("before_id") and not query.get("after_id"):
        start = max(start, stop - limit)
    chosen = copy.deepcopy(items[start : min(stop, start + limit)])
    more = start + len(chosen) < stop if not query.get("before_id") else start > 0
    return {
        "data": chosen,
        "has_more": more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class AnthropicWireServer(WireServer):
    """A real Anthropic-wire HTTP server on 127.0.0.1 with a random port.

    Everything of ``WireServer`` applies (``chunk_delay``, ``error_after_chunks``, ``hold``,
    ``gzip_streams``, ``retryable_errors``, ``count_answers``, ``requests``/``last_request`` with
    every header, ``stop()``); ``base_url`` has no ``/v1``, as the anthropic SDK expects.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.batches: dict[str, JSON] = {}
        self._batch_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the anthropic SDK appends ``/v1/messages`` itself)."""
        return f"http://127.0.0.1:{self.port}"

    def reply_headers(self, request_id: str) -> dict[str, str]:
        return {
            "request-id": request_id,
            "anthropic-organization-id": "f3a1c2d4-0000-4000-8000-00000000wire",
            "anthropic-workspace-id": WORKSPACE_ID,
        }

    @staticmethod
    def answer_for(body: JSON, endpoint: str = "/v1/messages") -> Any:
        """What ``POST /v1/messages`` serves for ``body``: the event list when streaming, else the
        ``Message``."""
        body = copy.deepcopy(body)
        return message_events(body) if body.get("stream") else message_payload(body)

    @staticmethod
    def answer_text(body: JSON, endpoint: str = "/v1/messages") -> str:
        """The text of the answer to ``body`` (every text block, joined)."""
        blocks, _ = answer_blocks(copy.deepcopy(body))
        return "".join(b.get("text", "") for b in blocks)

    # routing --------------------------------------------------------------------------------

    def _route(self, request: ReceivedRequest) -> Reply:
        rid = request.request_id = _request_id(request.request_id)
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not key.strip() or key.strip() == BAD_API_KEY:
            return error_reply(401, rid)
        path, method = request.path.rstrip("/"), request.method
        path, model = platform_route(path)
        if model is not None and isinstance(request.json, dict):
            request.json = {**request.json, "model": model}
        if method == "GET" and path == "/v1/models":
            return Reply(body=page(MODELS, request.query))
        if method == "GET" and path.startswith("/v1/models/"):
            model_id = path.removeprefix("/v1/models/")
            found = next((m for m in MODELS if m["id"] == model_id), None)
            if found is None:
                return error_reply(404, rid, f"model: {model_id}")
            return Reply(body=copy.deepcopy(found))
        if path.startswith("/v1/messages/batches"):
            return self._batches(request, path.removeprefix("/v1/messages/batches").strip("/"), rid)
        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return Reply(404, error_body("not_found_error", "Not Found", rid))
        body = request.json
        if not isinstance(body, dict):
            return error_reply(400, rid, "There was an issue with your request body: invalid JSON")
        for required in ("model", "messages") + (("max_tokens",) if path == "/v1/messages" else ()):
            if required not in body:
                return error_reply(400, rid, f"{required}: Field required")
        status = _error_status(body.get("model"))
        if status is not None:
            return error_reply(status, rid)
        if body.get("model") == ECHO_AUTH_MODEL:  # a server that quotes the credentials it got
            return error_reply(401, rid, f"invalid credentials: {request.headers.get('authorization', '')}")
        if path == "/v1/messages/count_tokens":
            return Reply(body={"input_tokens": input_tokens(body)})
        payload = self.answer_for(body)
        if body.get("model") == STREAM_ERROR_MODEL and body.get("stream"):
            payload = [*payload[:4], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
        if self.count_answers:
            with self._lock:
                self.answers += 1
                number = self.answers
            stamp_answer(payload, f"[{number}] ")
        if isinstance(payload, list):
            return Reply(events=payload, named_events=True)
        return Reply(body=payload)

    def _batches(self, request: ReceivedRequest, rest: str, rid: str) -> Reply:
        method = request.method
        if method == "POST" and not rest:
            body = request.json if isinstance(request.json, dict) else {}
            requests = body.get("requests") or []
            if not requests:
                return error_reply(400, rid, "requests: List should have at least 1 item after validation")
            batch_id = make_id("msgbatch", _canonical(requests))
            batch = {
                "id": batch_id,
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {
                    "processing": len(requests),
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "ended_at": None,
                "created_at": "2025-11-26T10:00:00.000000+00:00",
                "expires_at": "2025-11-27T10:00:00.000000+00:00",
                "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": None,
            }
            with self._batch_lock:
                self.batches[batch_id] = {"batch": batch, "requests": copy.deepcopy(requests)}
            return Reply(body=copy.deepcopy(batch))
        if method == "GET" and not rest:
            with self._batch_lock:
                batches = [copy.deepcopy(entry["batch"]) for entry in reversed(self.batches.values())]
            return Reply(body=page(batches, request.query))
        batch_id, _, action = rest.partition("/")
        with self._batch_lock:
            entry = self.batches.get(batch_id)
            if entry is None:
                return error_reply(404, rid, f"message_batch: {batch_id}")
            batch = entry["batch"]
            if method == "GET" and not action:
                if batch["processing_status"] == "in_progress":
                    counts = batch["request_counts"]
                    counts["succeeded"], counts["processing"] = counts["processing"], 0
                    batch["processing_status"] = "ended"
                    batch["ended_at"] = "2025-11-26T10:04:12.000000+00:00"
                    batch["results_url"] = f"{self.base_url}/v1/messages/batches/{batch_id}/results"
                return Reply(body=copy.deepcopy(batch))
            if method == "POST" and action == "cancel":
                if batch["processing_status"] == "in_progress":
                    batch["processing_status"] = "canceling"
                    batch["cancel_initiated_at"] = "2025-11-26T10:01:00.000000+00:00"
                return Reply(body=copy.deepcopy(batch))
            if method == "GET" and action == "results" and batch["processing_status"] == "ended":
                lines = [
                    json.dumps(
                        {
                            "custom_id": item["custom_id"],
                            "result": {"type": "succeeded", "message": message_payload(item["params"])},
                        }
                    )
                    for item in entry["requests"]
                ]
                return Reply(content=("\n".join(lines) + "\n").encode(), content_type="application/binary")
        return Reply(404, error_body("not_found_error", "Not Found", rid))


WORKSPACE_ID = "wrkspc_01WireWorkspace0000000000"
"""The ``anthropic-workspace-id`` every reply carries (anthropic 2.17 sets it as ``_workspace_id``)."""

ECHO_AUTH_MODEL = "wire-echo-auth"
"""A model whose request is refused (401) with a message that quotes its ``Authorization`` header."""

_BEDROCK_PATH = re.compile(r"/model/(?P<model>[^/]+)/invoke")
_VERTEX_PATH = re.compile(
    r"/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+):(?P<verb>\w+)"
)


def platform_route(path: str) -> tuple[str, str | None]:
    """The first-party path that a Bedrock or Vertex path stands for, and the model the path
    names (those clients move the model from the body to the path): Bedrock's
    ``/model/{model}/invoke``, Vertex's ``.../publishers/anthropic/models/{model}:rawPredict`` and
    ``:streamRawPredict`` (and ``count-tokens:rawPredict``, whose model stays in the body)."""
    bedrock = _BEDROCK_PATH.fullmatch(path)
    if bedrock:
        return "/v1/messages", bedrock.group("model")
    vertex = _VERTEX_PATH.fullmatch(path)
    if vertex:
        if vertex.group("model") == "count-tokens":
            return "/v1/messages/count_tokens", None
        return "/v1/messages", vertex.group("model")
    return path, None


def _request_id(seed: str) -> str:
    return make_id("req", seed)[:30]


def _error_status(model: Any) -> int | None:
    if isinstance(model, str) and model.startswith("wire-error-") and model.removeprefix("wire-error-").isdigit():
        status = int(model.removeprefix("wire-error-"))
        return status if status in ERROR_TYPES else None
    return None
