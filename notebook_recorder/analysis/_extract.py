"""One parsed recording in, the rows of all four frames out, in a single pass. No pandas here.

:func:`extract` reads the file's envelope (FORMAT.md): the call's metadata, a recorded
exception, and the kind of recording, then hands the request and the response to the readers of
their shape (``_shapes``: OpenAI chat and completions, the Responses API, Anthropic, Gemini,
Ollama, embeddings and error bodies, tool invocations) and a streamed body to ``_stream``.

The kinds of recording:

- inference calls (``body`` / ``endpoint``), streamed (chunks) or not
- raw HTTP recordings (``payload`` / ``status``; streamed bodies are SSE lines)
- tool invocations (``provider`` / ``tool_name`` / ``kwargs``)
- provider calls (``api`` / ``file_id``) and exceptions (``is_exception``)

Anything unknown degrades to empty values; only a file that is not a recording at all raises
:class:`~notebook_recorder.RecordingFormatError`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..core._errors import RecordingFormatError
from ..core._keys import call_kind
from . import _shapes
from ._rows import (
    CALL_FIELDS as CALL_FIELDS,
    MESSAGE_FIELDS as MESSAGE_FIELDS,
    TOKEN_FIELDS as TOKEN_FIELDS,
    TOOL_CALL_FIELDS as TOOL_CALL_FIELDS,
    Call,
    Extracted as Extracted,
    MessageRow,
    Slots,
    Stream as Stream,
    ToolRow,
    encoded_class_name,
    int_or_none,
    new_call,
    slot_rows,
    unwrap,
)
from ._shapes.tool_invocations import read_invocation
from ._stream import read_stream


def extract(data: Any, key: str, path: object = "<recording>") -> Extracted:
    """All rows of one parsed recording file.

    Raises :class:`~notebook_recorder.RecordingFormatError` naming ``path`` when ``data`` is
    not a recording at all (not an object, or no ``request`` / ``response`` object).
    """
    if type(data) is not dict:
        raise RecordingFormatError(path, f"not a recording: the top level is {type(data).__name__}, not an object")
    request = data.get("request")
    response = data.get("response")
    if type(request) is not dict:
        raise RecordingFormatError(path, "not a recording: no 'request' object")
    if type(response) is not dict:
        raise RecordingFormatError(path, "not a recording: no 'response' object")

    call = new_call(key)
    messages: list[MessageRow] = []
    tools: list[ToolRow] = []
    tokens: Stream | None = None
    _read_metadata(data, request, response, call)
    is_exception = bool(response.get("is_exception"))
    if is_exception:
        _read_exception(response, call)

    slots: Slots = {}
    if "tool_name" in request:
        tokens = read_invocation(request, response, call, tools)
    else:
        request_body = _read_call_kind(request, response, call)
        endpoint = call["endpoint"] if type(call["endpoint"]) is str else ""
        model = request.get("model")
        if not model and type(request_body) is dict:
            model = request_body.get("model")
        call["model"] = model if model else None
        if type(request_body) is dict:
            _shapes.read_request(request_body, endpoint, messages, tools)
        call["n_messages"] = len(messages)
        body = response.get("body")
        if not is_exception:
            if call["is_streaming"] and type(body) is list:
                n = request_body.get("n") if type(request_body) is dict else None
                offsets = response.get("chunk_offsets_ms")
                tokens = read_stream(body, offsets if type(offsets) is list else None, call, slots, n is None or n == 1)
            else:
                _read_whole_response(body, call, slots)
        if slots:
            tools.extend(slot_rows(slots))
        call["n_tool_calls"] = len(slots)
    if _http_level(response) and not is_exception:
        call["status_code"] = int_or_none(response.get("status"))
        if not (messages or slots or call["text"] or call["prompt_tokens"] is not None):
            call["kind"] = "http"  # a search API, a download: no LLM shape in it
    if is_exception:
        call["kind"] = "exception"
    return Extracted(tuple(call.values()), messages, [tuple(r) for r in tools], tokens)


def _http_level(response: dict[str, Any]) -> bool:
    """Whether a file was recorded at the HTTP level (FORMAT.md: a ``status`` and the body's
    ``content_type`` beside the body)."""
    return "status" in response and "content_type" in response


def _read_metadata(data: dict[str, Any], request: dict[str, Any], response: dict[str, Any], call: Call) -> None:
    """Scope, occurrence, the recorder's extensions (sdk, recorded_at, duration), is_streaming."""
    test_id = data.get("test_id")
    call["test_id"] = test_id if test_id is not None else request.get("test_id")
    occurrence = data.get("occurrence")  # FORMAT.md, "Repeated identical requests": absent means 1
    call["occurrence"] = (
        1 if occurrence is None else occurrence if type(occurrence) is int and occurrence >= 1 else None
    )
    recorder = data.get("recorder")
    if type(recorder) is dict:
        call["sdk"], call["sdk_version"] = recorder.get("sdk"), recorder.get("sdk_version")
        recorded_at = recorder.get("recorded_at")
        call["recorded_at"] = recorded_at if type(recorded_at) is str else None
    duration = response.get("duration_ms")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        call["duration_ms"] = float(duration)
    call["is_streaming"] = bool(response.get("is_streaming"))


def _read_exception(response: dict[str, Any], call: Call) -> None:
    details = response.get("exception_data")
    details = details if type(details) is dict else {}
    call["exception_type"] = details.get("type")
    message = response.get("exception_message") or details.get("message")
    call["exception_message"] = message if message is None or type(message) is str else str(message)
    call["status_code"] = int_or_none(details.get("status_code"))
    call["provider"] = details.get("provider")


def _read_call_kind(request: dict[str, Any], response: dict[str, Any], call: Call) -> Any:
    """Kind, endpoint, URL, method and provider of an API call; returns its request body."""
    if "payload" in request or (
        "url" in request and "body" not in request and "endpoint" not in request and "api" not in request
    ):
        call["kind"] = "http"
        url = request.get("url")
        call["url"] = url
        call["method"] = request.get("method")
        call["endpoint"] = urlsplit(url).path if type(url) is str else None
        call["status_code"] = int_or_none(response.get("status"))
        return request.get("payload")
    if "body" in request or "endpoint" in request:
        call["url"] = request.get("url")
        call["method"] = request.get("method")
        endpoint = request.get("endpoint")
        if not endpoint and type(call["url"]) is str:
            endpoint = urlsplit(call["url"]).path
        call["endpoint"] = endpoint
        call["kind"] = call_kind(endpoint if type(endpoint) is str else "")
        metadata = request.get("provider_metadata")
        if type(metadata) is dict:
            call["provider"] = call["provider"] or metadata.get("provider")
            if metadata.get("ollama_sdk_version") and call["sdk"] is None:
                call["sdk"], call["sdk_version"] = "ollama", metadata.get("ollama_sdk_version")
        return request.get("body")
    call["kind"] = "other"
    call["provider"] = request.get("provider")
    call["endpoint"] = request.get("api")
    return request.get("body")


def _read_whole_response(body: Any, call: Call, slots: Slots) -> None:
    """Fill text, finish_reason, usage and tool calls from a non-streamed response body."""
    call["response_type"] = encoded_class_name(body)
    data = unwrap(body)
    if type(data) is list:
        call["response_type"] = encoded_class_name(data[0]) if data else None
        return
    if type(data) is str:
        call["text"] = data
        return
    if type(data) is not dict:
        return
    if isinstance(data.get("model"), str):
        call["response_model"] = data["model"]
    _shapes.read_response(data, call, slots)
