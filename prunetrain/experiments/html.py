"""One self-contained HTML page from a report's ``summary.md``, its plots embedded as base64 PNG.

The markdown is the report's own, so only what :mod:`prunetrain.experiments.report`
writes is understood: ``#`` headings, paragraphs, ``-`` lists, pipe tables,
images on a line of their own, and inline ``code``, ``**bold**`` and links.
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

from prunetrain.files import atomic_write

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_INLINE = re.compile(
    r"`(?P<code>[^`]+)`|\*\*(?P<bold>[^*]+)\*\*|\[(?P<text>[^\]]+)\]\((?P<href>[^)\s]+)\)"
)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f5f5f5; padding: 0 0.2em; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
"""


def inline(text: str) -> str:
    """Escape ``text`` and turn inline code, bold and links into HTML.

    Examples
    --------
    >>> inline("a `x<y` and **b** [c](d.md)")
    'a <code>x&lt;y</code> and <strong>b</strong> <a href="d.md">c</a>'
    """
    out, end = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[end : m.start()], quote=False))
        if m.group("code") is not None:
            out.append(f"<code>{html.escape(m.group('code'), quote=False)}</code>")
        elif m.group("bold") is not None:
            out.append(f"<strong>{inline(m.group('bold'))}</strong>")
        else:
            href = html.escape(m.group("href"))
            out.append(f'<a href="{href}">{inline(m.group("text"))}</a>')
        end = m.end()
    out.append(html.escape(text[end:], quote=False))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, align, *body = lines
    right = [c.endswith(":") for c in _cells(align)]

    def row(cells: list[str], tag: str) -> str:
        parts = []
        for i, c in enumerate(cells):
            cls = ' class="num"' if i < len(right) and right[i] else ""
            parts.append(f"<{tag}{cls}>{inline(c)}</{tag}>")
        return "<tr>" + "".join(parts) + "</tr>"

    rows = [row(_cells(head), "th")] + [row(_cells(b), "td") for b in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _image(alt: str, src: str, folder: Path) -> str:
    path = folder / src
    if not path.is_file():
        return f"<p><em>missing plot {html.escape(src)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render(markdown: str, folder: str | os.PathLike, title: str = "") -> str:
    """The HTML page of ``markdown``, with each image read from ``folder`` and embedded.

    Examples
    --------
    >>> page = render("# T\\n\\n| a | b |\\n| --- | ---: |\\n| x | 1 |\\n", ".")
    >>> "<h1>T</h1>" in page and '<td class="num">1</td>' in page
    True
    """
    folder = Path(folder)
    blocks: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j]))
            i = j
        elif _IMAGE.match(line.strip()):
            m = _IMAGE.match(line.strip())
            blocks.append(_image(m.group("alt"), m.group("src"), folder))
            i += 1
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            j = i
            while (
                j < len(lines)
                and lines[j].strip()
                and not lines[j].startswith(("#", "|", "- "))
                and not _IMAGE.match(lines[j].strip())
            ):
                j += 1
            blocks.append(f"<p>{inline(' '.join(lines[i:j]))}</p>")
            i = j
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def write_page(markdown_path: str | os.PathLike, out: str | os.PathLike, title: str = "") -> Path:
    """Write the self-contained page of the markdown file ``markdown_path`` to ``out``."""
    markdown_path, out = Path(markdown_path), Path(out)
    page = render(markdown_path.read_text(), markdown_path.parent, title)
    atomic_write(out, lambda f: f.write(page), binary=False)
    return out
