"""The documentation site builds with ``mkdocs build --strict`` and documents the whole public API.

The site is built once per session into a temporary directory, exactly as ``make docs`` builds
it (mkdocs.yml, docs/hooks.py), with the network variables pointing nowhere: a plugin or theme
that fetched fonts or inventories would fail the build.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import notebook_recorder as nr

pytestmark = pytest.mark.frontend  # built once, in the openai 3.x suite

ROOT = Path(nr.__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with --strict (a broken link, reference or docstring fails here)."""
    if not MKDOCS.exists() and shutil.which("mkdocs") is None:
        pytest.fail("mkdocs is not installed: install the `docs` dependency group (`uv pip install --group docs -e .`)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    # No proxy can help: anything that tries the network fails fast instead of waiting.
    env.update({"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""})
    done = subprocess.run(
        [str(MKDOCS if MKDOCS.exists() else "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


def test_the_api_page_documents_every_public_name(site: Path) -> None:
    page = (site / "api.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="notebook_recorder\.([A-Za-z_]+)"', page))
    missing = sorted(set(nr.__all__) - documented)
    assert not missing, f"docs/api.md does not document these names of notebook_recorder.__all__: {missing}"
    # Each entry carries its docstring: the first line of each public function's and class's docstring shows.
    text = " ".join(_text(site / "api.html").split())
    for name in nr.__all__:
        doc = getattr(nr, name).__doc__ if name != "__version__" else None
        if doc and not isinstance(getattr(nr, name), str):
            first = " ".join(re.sub(r"``?|:\w+:", "", doc.strip().split("\n\n")[0]).split())[:40]
            assert first.split()[0] in text, f"the docstring of {name} is not on the API page: {first!r}"


def test_every_readme_section_and_tutorial_is_a_page(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"(?m)^## (.+)$", readme)
    pages = " ".join(_text(p) for p in site.rglob("*.html"))
    for heading in headings:
        assert " ".join(heading.replace("`", "").split()) in pages, f"README section {heading!r} is not on the site"
    assert (site / "install-into-your-own-project.html").is_file()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "notebooks" / f"{notebook.stem}.html").is_file(), f"{notebook.name} is not rendered"


def test_the_site_loads_nothing_from_the_network(site: Path) -> None:
    """No web fonts or scripts from elsewhere: the site works offline, as the package does."""
    external = set()
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        external |= set(re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(https?://[^"]+)"', text))
    assert not external, f"the site loads from the network: {sorted(external)}"
