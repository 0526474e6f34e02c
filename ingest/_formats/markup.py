"""Markdown and HTML through unstructured (``partition_md``, ``partition_html``).

unstructured's HTML parser types an element ``Title`` only for ``<h1>``-``<h6>`` (with
``category_depth`` = level - 1), so Titles are trusted as headings here. Markdown anchors are
GitHub slugs of the heading; HTML anchors come from the heading's ``id`` (then a named anchor
inside it, then the nearest enclosing element's ``id``), read with lxml because unstructured
keeps no ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

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
T = TypeVar("T")


def parse_markdown(text: str) -> Parsed:
    """Markdown: sections cut at headings, anchor = the GitHub slug of the section's heading.

    Rendered to HTML once, as ``partition_md`` does (its default extensions), and partitioned
    as HTML: the tree is read too, for what the elements do not keep (ordered lists' numbers).
    """
    ensure_unstructured()
    import markdown
    from unstructured.partition.html import partition_html

    title, text = _front_matter(text)
    html = markdown.markdown(text, extensions=["tables", "fenced_code"]) if text.strip() else ""
    elements = partition_html(text=html, languages=LANGUAGES) if html.strip() else []
    seen: dict[str, int] = {}

    def heading_of(element: Any) -> tuple[int, str | None] | None:
        if element.category != "Title":
            return None
        depth = element.metadata.category_depth or 0
        return depth + 1, github_slug(squash(element.text), seen) or None

    steps = _steps(_tree(f"<html><body>{html}</body></html>")) if elements else _no_steps
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
    # Headings come in document order; those unstructured dropped (nav, header) are skipped.
    anchor_of = _in_order(_html_headings(root) if root is not None else [])
    elements = partition_html(text=text, languages=LANGUAGES) if text.strip() else []

    def heading_of(element: Any) -> tuple[int, str | None] | None:
        if element.category != "Title":
            return None
        return (element.metadata.category_depth or 0) + 1, anchor_of(element)

    steps = _steps(root) if root is not None else _no_steps
    sections = element_outline(elements, heading_of, step_of=steps).finish()
    title = _html_title(root) if root is not None else None
    if title is None:
        title = next((squash(e.text) for e in elements if e.category == "Title"), None)
    return title, sections


def _tree(html: str) -> Any:
    from lxml import etree

    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    return etree.HTML(html, parser)


def _in_order(items: list[tuple[str, T]]) -> Callable[[Any], T | None]:
    """For elements met in document order, the value of the next of ``items`` (``(text,
    value)`` from the tree, in document order) that says the element's text; ``None`` for an
    element none of the rest says (the cursor stays). unstructured keeps no ids or list
    numbers: its elements are matched to the tree's nodes by text."""
    cursor = 0

    def value_of(element: Any) -> T | None:
        nonlocal cursor
        wanted = squash(element.text)
        for i in range(cursor, len(items)):
            if items[i][0] == wanted:
                cursor = i + 1
                return items[i][1]
        return None

    return value_of


def _steps(root: Any) -> StepFn:
    """Numbers of the list items of an ordered list (``<ol>``, honouring ``start``), for the
    ``ListItem`` elements that say the same text; an item of an unordered list, or one not
    found, gets ``None``."""
    items: list[tuple[str, int | None]] = []
    for element in root.iter("li") if root is not None else ():
        parent = element.getparent()
        number: int | None = None
        if parent is not None and parent.tag == "ol":
            start = str(parent.get("start") or "1").strip()
            before = sum(1 for s in element.itersiblings(preceding=True) if s.tag == "li")
            number = (int(start) if start.isdigit() else 1) + before
        items.append((squash(_own_text(element)), number))
    return _in_order(items)


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
