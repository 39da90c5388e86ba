"""Project guidelines: Markdown a project's admin writes, shown to labelers as safe HTML."""

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

# Markdown's own output, minus images (a guideline can link to one) and raw HTML blocks.
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del",
    "code", "pre", "kbd", "blockquote", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def guidelines_html(text: str) -> SafeString:
    """Markdown to HTML, then sanitized: no scripts, event handlers, styles or
    javascript: links survive, whatever HTML the Markdown contained."""
    html = markdown.markdown(text or "", extensions=["tables", "sane_lists"])
    return mark_safe(nh3.clean(  # noqa: S308 -- nh3 just removed everything unsafe
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    ))
