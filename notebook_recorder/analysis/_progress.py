"""A tqdm bar over the files being read, shown only where someone is watching. No pandas here."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

#: Show a progress bar once loading has taken this long (seconds).
PROGRESS_DELAY_S = 1.0


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _auto_progress() -> bool:
    ci = os.environ.get("CI", "")
    if ci and ci.lower() not in ("0", "false", "no"):
        return False
    if _in_notebook():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A tqdm bar over the files being read: at once for ``progress=True``, else after a delay.

    ``enabled=None`` (the default of the load functions) shows the bar only in a terminal or a
    notebook, not in CI, and only once the load has run for :data:`PROGRESS_DELAY_S` (tqdm's
    ``delay``). The bar is ``tqdm.auto``'s: a widget in a notebook with ipywidgets, else text on
    stderr (also in a notebook without ipywidgets, where Jupyter redraws it in place).
    """

    def __init__(self, total: int, enabled: bool | None, desc: str) -> None:
        self.enabled = _auto_progress() if enabled is None else bool(enabled)
        self.bar: Any = None
        if self.enabled and total:
            self.bar = _make_bar(total, desc, 0.0 if enabled else PROGRESS_DELAY_S)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _has_widgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


def _make_bar(total: int, desc: str, delay: float) -> Any:
    kwargs: dict[str, Any] = {"total": total, "desc": desc, "unit": "file", "delay": delay}
    if _in_notebook() and not _has_widgets():
        # tqdm.auto would warn and fall back to this same text bar; say nothing, draw it on stderr.
        from tqdm.std import tqdm as text_tqdm

        return text_tqdm(file=sys.stderr, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
