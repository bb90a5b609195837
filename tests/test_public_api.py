"""The curated public API: `__all__` is guarded, every name resolves and documents itself."""

from __future__ import annotations

import inspect

import notebook_recorder as nr

EXPECTED = {
    "Call",
    "Column",
    "Frames",
    "RecordingLoadError",
    "load_frames",
    "Mode",
    "NetworkBlockedError",
    "NotRecordableError",
    "NotRecordedWarning",
    "RecordedToolError",
    "Recorder",
    "Recording",
    "RecordingError",
    "RecordingFormatError",
    "RecordingNotFoundError",
    "__version__",
    "calls",
    "clear_calls",
    "load_ipython_extension",
    "load_recordings",
    "messages",
    "plot_token_stream",
    "recording",
    "register_types",
    "start",
    "stop",
    "token_stream",
    "tool",
    "tool_calls",
    "unload_ipython_extension",
}


def test_all_is_exactly_the_curated_names() -> None:
    assert set(nr.__all__) == EXPECTED
    assert len(nr.__all__) == len(set(nr.__all__))


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in nr.__all__:
        value = getattr(nr, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert inspect.getdoc(value), f"nr.{name} has no docstring"


def test_dir_lists_the_public_names() -> None:
    assert set(nr.__all__) <= set(dir(nr))


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        nr.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
