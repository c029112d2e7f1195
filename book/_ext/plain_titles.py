"""Page titles with inline math as plain text in the browser tab.

A chapter title such as "training context $n$ against test-time passes $k$" reaches the HTML
<title> as "training context \\(n\\) against ...": MathJax typesets the page, not its <title>.
This drops the \\( \\) delimiters there (the sidebar and headings are typeset as usual).
"""
import re

_INLINE = re.compile(r"\\\((.*?)\\\)")


def _plain(app, pagename, templatename, context, doctree):
    if context.get("title"):
        context["title"] = _INLINE.sub(r"\1", context["title"])


def setup(app):
    app.connect("html-page-context", _plain)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
