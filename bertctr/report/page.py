"""``index.html``: the sections in one static page, with no script and nothing fetched.

Built with :class:`string.Template`; section bodies arrive escaped, and the
page escapes its own title and notes. The style is inline so the folder
opens anywhere (a file browser, a CI artefact), and a narrow window gets
one column.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from string import Template

from bertctr.report.sections import Section

__all__ = ["render_page"]

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em;
       color: #1d1d1f; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
nav ul { columns: 2; } .meta { color: #555; }
img.plot { max-width: 100%; height: auto; display: block; } img.square { max-width: 520px; }
table { border-collapse: collapse; margin: .6em 0; font-size: .85em; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; }
th { background: #f3f3f3; } .missing { color: #8a5a00; font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { margin: 0; width: 150px; font-size: .8em; }
.card img, .nothumb { width: 96px; height: 96px; object-fit: contain; background: #f3f3f3; }
.nothumb { display: flex; align-items: center; justify-content: center; color: #777; }
.tags { color: #555; }
@media (max-width: 600px) { nav ul { columns: 1; } }
</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
<nav><ul>$toc</ul></nav>
$sections
</body>
</html>
""")


def render_page(title: str, meta: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole page: title, notes (plain text), a table of contents and each section."""
    toc = "".join(
        f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a>'
        f"{'' if s.available else ' (not available)'}</li>"
        for s in sections
    )
    body = "\n".join(
        f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    return _PAGE.substitute(
        title=escape(title),
        meta="<br>".join(escape(line) for line in meta),
        toc=toc,
        sections=body,
    )
