"""mkdocs hook: the site's pages come from the repository's own files, never from copies.

- README.md is split at its ``## `` headings: the title, the introduction, "Quick start" and "Why"
  make the home page; every other section is a page of its own, in the README's order.
- The tutorials (``notebooks/*.ipynb``, rendered by mkdocs-jupyter), ``recordings/README.md`` and
  ``CHANGELOG.md`` are added as they are.
- Links are made to work on the site: an in-page ``#anchor`` of the README points to the page
  that now holds that section, and a relative link to a file that is not a page (a test fixture,
  a licence file) points to the file in the repository (``[project.urls] Repository`` in
  pyproject.toml), as the package index's description does.

The navigation is built here too (``nav`` in mkdocs.yml would repeat the README's headings).
Nothing here reaches the network.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
HOME_SECTIONS = ("Quick start", "Why")
EXTRA_PAGES = {"recordings/README.md": ROOT / "recordings" / "README.md", "changelog.md": ROOT / "CHANGELOG.md"}
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_pages: dict[str, str] = {}  # src_uri -> markdown


def _slug(title: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default ``slugify``)."""
    text = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _repository() -> str:
    with open(ROOT / "pyproject.toml", "rb") as file:
        urls = tomllib.load(file)["project"].get("urls", {})
    return str(urls.get("Repository", "")).rstrip("/")


def _split_readme() -> list[tuple[str, str, str]]:
    """(title, src_uri, markdown) for each page made from README.md, the home page first."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"(?m)^## (.+)\n", text)
    home = [parts[0]]
    pages: list[tuple[str, str, str]] = []
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        title = title.strip()
        if title in HOME_SECTIONS:
            home.append(f"## {title}\n{body}")
        else:
            pages.append((title, f"{_slug(title)}.md", f"# {title}\n{body}"))
    return [("Home", "index.md", "".join(home)), *pages]


def _anchor_pages(pages: list[tuple[str, str, str]]) -> dict[str, str]:
    """Every heading's anchor in the README, and the page that holds it now."""
    found: dict[str, str] = {}
    for _, uri, markdown in pages:
        for heading in re.findall(r"(?m)^#{1,6} (.+)$", markdown):
            found.setdefault(_slug(heading.strip()), uri)
    return found


def _fix_links(markdown: str, page_uri: str, anchors: dict[str, str], site: set[str], repository: str) -> str:
    page_dir = PurePosixPath(page_uri).parent
    source_dir = PurePosixPath("" if page_uri.count("/") == 0 else page_uri.rsplit("/", 1)[0])

    def fix(match: re.Match[str]) -> str:
        text, target = match["text"], match["target"]
        if re.match(r"[a-z]+:", target):
            return match[0]
        path, _, anchor = target.partition("#")
        if not path:  # an anchor of the README: the page holding that section
            where = anchors.get(anchor)
            if where is None or where == page_uri:
                return match[0]
            return f"[{text}]({_relative(where, page_dir)}#{anchor})"
        resolved = _normalise(source_dir / path)
        if resolved in site:
            return match[0]
        link = f"{repository}/blob/main/{resolved}" if repository else resolved
        return f"[{text}]({link}{'#' + anchor if anchor else ''})"

    return _LINK.sub(fix, markdown)


def _normalise(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts).rstrip("/")


def _relative(target: str, start: PurePosixPath) -> str:
    depth = 0 if str(start) in ("", ".") else len(start.parts)
    return "../" * depth + target


def on_config(config: Any) -> Any:
    """Split the README and build the navigation."""
    readme = _split_readme()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    site = {uri for _, uri, _ in readme} | set(EXTRA_PAGES) | {f"notebooks/{nb.name}" for nb in notebooks}
    site |= {uri.rsplit("/", 1)[0] if uri.endswith("README.md") else uri for uri in EXTRA_PAGES}
    anchors = _anchor_pages(readme)
    repository = _repository()
    _pages.clear()
    for _, uri, markdown in readme:
        _pages[uri] = _fix_links(markdown, uri, anchors, site, repository)
    for uri, source in EXTRA_PAGES.items():
        _pages[uri] = _fix_links(source.read_text(encoding="utf-8"), uri, anchors, site, repository)
    guide = [{title: uri} for title, uri, _ in readme[1:] if title != "Tutorials"]
    config["nav"] = [
        {"Home": "index.md"},
        {"Guide": guide},
        {"Tutorials": ["tutorials.md", *(f"notebooks/{nb.name}" for nb in notebooks)]},
        {"API reference": "api.md"},
        {"Recordings in this repository": "recordings/README.md"},
        {"Changelog": "changelog.md"},
    ]
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files: Files, config: Any) -> Files:
    """Add the README's pages, the extra pages and the tutorials."""
    for uri, markdown in _pages.items():
        files.append(File.generated(config, uri, content=markdown))
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
