"""Markdown and HTML through unstructured (``partition_md``, ``partition_html``).

unstructured's HTML parser types an element ``Title`` only for ``<h1>``-``<h6>`` (with
``category_depth`` = level - 1), so Titles are trusted as headings here. Markdown anchors are
GitHub slugs of the heading; HTML anchors come from the heading's ``id`` (then a named anchor
inside it, then the nearest enclosing element's ``id``), read with lxml because unstructured
keeps no ids.
"""

from __future__ import annotations

import re
from typing import Any

from kb.ingest._formats.common import (
    LANGUAGES,
    Parsed,
    StepFn,
    element_outline,
    github_slug,
    squash,
)
from kb.ingest._formats.unstructured_setup import ensure_unstructured

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FM_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.M)
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def parse_markdown(text: str) -> Parsed:
    """Markdown: sections cut at headings, anchor = the GitHub slug of the section's heading."""
    ensure_unstructured()
    from unstructured.partition.md import partition_md

    title, text = _front_matter(text)
    elements = partition_md(text=text, languages=LANGUAGES) if text.strip() else []
    seen: dict[str, int] = {}
    steps = _steps(_markdown_tree(text)) if elements else _no_steps

    def heading_of(element: Any) -> tuple[int, str | None] | None:
        if element.category != "Title":
            return None
        depth = element.metadata.category_depth or 0
        return depth + 1, github_slug(squash(element.text), seen) or None

    sections = element_outline(elements, heading_of, step_of=steps).finish()
    if title is None:
        title = next((squash(e.text) for e in elements if e.category == "Title"), None)
    return title, sections


def parse_html(text: str, *, max_depth: int = 200) -> Parsed:
    """HTML: sections cut at ``<h1>``-``<h6>``; title from ``<title>``, else the first ``<h1>``.

    :raises ParseError: elements nested deeper than ``max_depth`` (``KB_INGEST__MAX_HTML_DEPTH``).
    """
    ensure_unstructured()
    from lxml import etree
    from unstructured.partition.html import partition_html

    text = _XML_DECLARATION.sub("", text, count=1)
    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    root = etree.HTML(text, parser)
    depth = _depth(root) if root is not None else 0
    # libxml2 stops building the tree at 256 levels and says so in its error log.
    if depth > max_depth or any("depth" in str(e.message).lower() for e in parser.error_log):
        from kb.ingest._formats.sniff import limit_error

        raise limit_error(f"HTML nested {depth}+ elements deep", max_depth, "MAX_HTML_DEPTH")
    headings = _html_headings(root) if root is not None else []
    elements = partition_html(text=text, languages=LANGUAGES) if text.strip() else []
    cursor = 0

    def heading_of(element: Any) -> tuple[int, str | None] | None:
        nonlocal cursor
        if element.category != "Title":
            return None
        depth = element.metadata.category_depth or 0
        wanted = squash(element.text)
        # Headings come in document order; skip those unstructured dropped (nav, header).
        for i in range(cursor, len(headings)):
            if headings[i][0] == wanted:
                cursor = i + 1
                return depth + 1, headings[i][1]
        return depth + 1, None

    steps = _steps(root) if root is not None else _no_steps
    sections = element_outline(elements, heading_of, step_of=steps).finish()
    title = _html_title(root) if root is not None else None
    if title is None:
        title = next((squash(e.text) for e in elements if e.category == "Title"), None)
    return title, sections


def _markdown_tree(text: str) -> Any:
    """The HTML tree of Markdown ``text`` as ``partition_md`` builds it (its default
    extensions), for what its elements do not keep: the numbers of ordered lists' items."""
    import markdown
    from lxml import etree

    html = markdown.markdown(text, extensions=["tables", "fenced_code"])
    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    return etree.HTML(f"<html><body>{html}</body></html>", parser)


def _steps(root: Any) -> StepFn:
    """Numbers of the list items of an ordered list (``<ol>``, honouring ``start``), for the
    ``ListItem`` elements that say the same text, matched in document order like headings;
    an item of an unordered list, or one not found, gets ``None``."""
    items: list[tuple[str, int | None]] = []
    for element in root.iter("li") if root is not None else ():
        parent = element.getparent()
        number: int | None = None
        if parent is not None and parent.tag == "ol":
            start = str(parent.get("start") or "1").strip()
            siblings = [c for c in parent if c.tag == "li"]
            number = (int(start) if start.isdigit() else 1) + siblings.index(element)
        items.append((squash(_own_text(element)), number))
    cursor = 0

    def step_of(element: Any) -> int | None:
        nonlocal cursor
        wanted = squash(element.text)
        for i in range(cursor, len(items)):
            if items[i][0] == wanted:
                cursor = i + 1
                return items[i][1]
        return None

    return step_of


def _own_text(item: Any) -> str:
    """A list item's text without the lists nested in it (their items are elements too)."""
    parts = [item.text or ""]
    for child in item:
        if child.tag not in ("ol", "ul"):
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return "".join(parts)


def _no_steps(_element: Any) -> int | None:
    return None


def _depth(root: Any) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in element)
    return deepest


def _front_matter(text: str) -> tuple[str | None, str]:
    """Strip a YAML front-matter block; return its ``title:`` if any, and the rest."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    found = _FM_TITLE.search(match.group(1))
    title = found.group(1).strip("\"'") if found else None
    return title or None, text[match.end() :]


def _html_headings(root: Any) -> list[tuple[str, str | None]]:
    """``(text, anchor)`` of every heading in document order."""
    out: list[tuple[str, str | None]] = []
    for element in root.iter(*_HEADING_TAGS):
        out.append((squash("".join(element.itertext())), _anchor(element)))
    return out


def _anchor(heading: Any) -> str | None:
    own = heading.get("id")
    if own:
        return str(own).strip() or None
    for inner in heading.iter("a"):
        name = inner.get("id") or inner.get("name")
        if name:
            return str(name).strip() or None
    for ancestor in heading.iterancestors():
        found = ancestor.get("id")
        if found and str(found).strip():
            return str(found).strip()
    return None


def _html_title(root: Any) -> str | None:
    for tag in ("title", "h1"):
        for element in root.iter(tag):
            text = squash("".join(element.itertext()))
            if text:
                return text
    return None
