"""``plot_token_stream``: how answers streamed, drawn with matplotlib (the ``[plot]`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._frames import token_stream
from ._loader import Source

_HINT = "plot_token_stream needs matplotlib: pip install 'notebook-recorder[plot]'"


def plot_token_stream(src: Source, ax: Any = None, *, legend: bool | None = None) -> Any:
    """Characters of answer text over time, one line per streamed recording; returns the Axes.

    The x axis is the arrival time in ms when every plotted recording has timing (our
    ``chunk_offsets_ms`` extension), and the chunk index otherwise. ``src`` is anything
    :func:`token_stream` takes, or a frame it returned.
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
    for path, g in groups:
        label = str(path).rsplit("/", 1)[-1].removesuffix(".json")
        label = label[:12] + "…" if len(label) > 13 else label
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
    ax.set_title("Token streams" if len(groups) != 1 else f"Token stream of {groups[0][0]}".rsplit("/", 1)[-1])
    if legend if legend is not None else 0 < len(groups) <= 10:
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax
