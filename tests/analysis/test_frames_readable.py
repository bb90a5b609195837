"""The frames read well: a tool row names its provider and tool where a reader looks (``endpoint``,
as ``ls``, ``nr.calls()`` and ``%apirec status`` show it), and the token-stream plot's legend
names each call in words (model, prompt, scope), not by a file key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_analysis import COMPLETION_STREAM, HELLO_STREAM, TAVILY_INVOCATION

import notebook_recorder as nr


def test_a_tool_row_carries_its_provider_and_name_in_endpoint() -> None:
    df = nr.load_recordings([TAVILY_INVOCATION, HELLO_STREAM])
    tool = df[df["kind"] == "tool"].iloc[0]
    assert (tool["endpoint"], tool["tool_name"], tool["provider"]) == ("tavily/web_search", "web_search", "tavily")
    assert str(df["endpoint"].dtype) == "category"
    assert not df["endpoint"].isna().any()


def test_the_plot_legend_names_each_call_in_words() -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ax = nr.plot_token_stream([HELLO_STREAM, COMPLETION_STREAM])
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    calls = nr.load_recordings([HELLO_STREAM, COMPLETION_STREAM]).set_index("path")
    for path, label in zip([HELLO_STREAM, COMPLETION_STREAM], labels, strict=True):
        call = calls.loc[str(path)]
        assert label.startswith(f"{call['model']}"), label
        assert path.stem[:8] not in label, label  # not the file's key
        assert '"' in label  # a quoted prompt or answer start
    hello = json.loads(HELLO_STREAM.read_text())["request"]["body"]["messages"][-1]["content"]
    assert f'"{" ".join(str(hello).split())[:20]}' in labels[0], (labels[0], hello)
    assert isinstance(calls.loc[str(COMPLETION_STREAM), "test_id"], str)
    assert labels[1].count("[") == 1 and "[" not in labels[0]  # the scope (a llama-stack test id), when set
    plt.close("all")


def test_two_calls_that_read_alike_are_told_apart_by_key(tmp_path: Path) -> None:
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    copy = tmp_path / "copy.json"
    copy.write_bytes(HELLO_STREAM.read_bytes())
    ax = nr.plot_token_stream([HELLO_STREAM, copy])
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(set(labels)) == 2 and labels[1].endswith("· copy"), labels
    plt.close("all")
