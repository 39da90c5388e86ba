"""Guidelines: the Markdown a project admin writes becomes safe HTML."""

import pytest

from annotator.lib.guidelines import guidelines_html


def test_markdown_becomes_html():
    html = guidelines_html(
        "# Sarcasm\n\n- **negative** when *ironic*\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h1>Sarcasm</h1>" in html
    assert "<li><strong>negative</strong> when <em>ironic</em></li>" in html
    assert "<td>1</td>" in html


@pytest.mark.parametrize("markdown, gone", [
    ("<script>alert(1)</script>", "<script"),
    ("<script>alert(1)</script>", "alert(1)"),
    ('<img src="x" onerror="alert(1)">', "onerror"),
    ('<p onclick="steal()">hi</p>', "onclick"),
    ("[click](javascript:alert(1))", "javascript:"),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', "javascript:"),
    ('<iframe src="https://evil.example"></iframe>', "<iframe"),
    ('<span style="position:fixed">x</span>', "style="),
])
def test_unsafe_html_is_removed(markdown, gone):
    assert gone.lower() not in guidelines_html(markdown).lower()


def test_links_stay_and_get_noopener():
    html = guidelines_html("[the rules](https://example.com/rules)")
    assert 'href="https://example.com/rules"' in html
    assert 'rel="noopener noreferrer"' in html


def test_no_guidelines_is_empty():
    assert guidelines_html("") == ""
