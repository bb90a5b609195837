"""``plot_token_stream``: how answers streamed, drawn with matplotlib (the ``[plot]`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._frames import load_frames, token_stream
from ._loader import Source

_HINT = "plot_token_stream needs matplotlib: pip install 'notebook-recorder[plot]'"


def plot_token_stream(src: Source, ax: Any = None, *, legend: bool | None = None) -> Any:
    """Characters of answer text over time, one line per streamed recording; returns the Axes.

    The x axis is the arrival time in ms when every plotted recording has timing (our
    ``chunk_offsets_ms`` extension), and the chunk index otherwise. ``src`` is anything
    :func:`token_stream` takes, or a frame it returned. Each line is named in words: the model
    (or the tool) and the start of the prompt's last user message, with the test or scope that
    made the call when it has one (``gpt-4o, 3 messages: "What is the latest…" [test_chat.py::test_x]``).
    """
    try:
        import matplotlib

        if ax is None:
            import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(_HINT) from e
    del matplotlib

    is_token_frame = isinstance(src, pd.DataFrame) and {"cum_chars", "chunk_index", "offset_ms"} <= set(src.columns)
    ts = src if is_token_frame else token_stream(src)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    groups = list(ts.groupby("path", sort=False)) if len(ts) else []
    timed = bool(groups) and all(g["offset_ms"].notna().any() for _, g in groups)
    labels = _labels([str(path) for path, _ in groups])
    for path, g in groups:
        label = labels[str(path)]
        y = g["cum_chars"].to_numpy(dtype=float, na_value=np.nan)
        if timed:
            x = g["offset_ms"].to_numpy(dtype=float)
            keep = ~np.isnan(x)
            x, y = x[keep], y[keep]
        else:
            x = g["chunk_index"].to_numpy(dtype=float, na_value=np.nan)
        ax.step(x, y, where="post", label=label)
    ax.set_xlabel("time since request (ms)" if timed else "chunk index")
    ax.set_ylabel("characters of text")
    ax.set_title("Token streams" if len(groups) != 1 else f"Token stream of {labels[str(groups[0][0])]}")
    if legend if legend is not None else 0 < len(groups) <= 10:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _labels(paths: list[str]) -> dict[str, str]:
    """A name in words for each recording: ``MODEL, N messages: "PROMPT START…" [SCOPE]`` (the
    tool for a tool recording; the answer's start when there is no chat prompt), made unique with
    the file's key when two calls read the same."""
    if not paths:
        return {}
    frames = load_frames(paths)
    calls = frames.recordings.drop_duplicates("path").set_index("path")
    messages = frames.messages
    users = messages[messages["role"].astype("object") == "user"] if len(messages) else messages
    last_user = users.groupby("path", sort=False)["content"].last() if len(users) else pd.Series(dtype=object)
    labels: dict[str, str] = {}
    for path in paths:
        key = path.rsplit("/", 1)[-1].removesuffix(".json")
        if path not in calls.index:
            labels[path] = _short(key, 16)
            continue
        call = calls.loc[path]
        who = next((str(call[c]) for c in ("model", "response_model", "endpoint") if pd.notna(call[c])), "")
        prompt = last_user.get(path)
        n = call["n_messages"]
        words = [f"{who}{f', {int(n)} messages' if pd.notna(n) and int(n) > 1 else ''}:" if who else ""]
        if isinstance(prompt, str) and prompt.strip():
            words.append(f'"{_short(prompt, 32)}"')
        elif isinstance(call["text"], str) and call["text"].strip():  # no chat prompt (completions): the answer
            words.append(f'answer "{_short(call["text"], 28)}"')
        else:
            words.append(_short(key, 16))
        if pd.notna(call["test_id"]):
            words.append(f"[{_short(str(call['test_id']), 40)}]")
        if pd.notna(call["occurrence"]) and int(call["occurrence"]) > 1:
            words.append(f"(#{int(call['occurrence'])})")
        labels[path] = " ".join(w for w in words if w)
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    for path, label in labels.items():
        if counts[label] > 1:
            labels[path] = f"{label} · {_short(path.rsplit('/', 1)[-1].removesuffix('.json'), 9)}"
    return labels
