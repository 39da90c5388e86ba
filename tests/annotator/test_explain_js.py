"""The page script that highlights an explanation (annotator/static/annotator/explain.js),
run by Node with a minimal DOM: the text stays whole and only strong words are marked."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "annotator" / "static" / "annotator" / "explain.js"
NODE = shutil.which("node")

DOM = """
function node(tag) {
  return { tag, children: [], style: { setProperty(k, v) { this[k] = v; } },
           append(...nodes) { this.children.push(...nodes); },
           replaceChildren() { this.children = []; } };
}
globalThis.document = {
  createElement: (tag) => node(tag),
  createTextNode: (text) => ({ tag: "#text", textContent: text }),
  querySelectorAll: () => [],
};
globalThis.window = globalThis;
"""


def _render(text: str, explanation: dict) -> list[dict]:
    program = DOM + SCRIPT.read_text() + f"""
const box = document.createElement("p");
Explain.render(box, {json.dumps(text)}, {json.dumps(explanation)});
console.log(JSON.stringify(box.children.map((c) => ({{tag: c.tag, text: c.textContent,
  cls: c.className || "", strength: c.style ? c.style["--strength"] : null}}))));
console.log(JSON.stringify(Explain.summary({json.dumps(explanation)})));
"""
    out = subprocess.run([NODE, "-e", program], capture_output=True, text=True, check=True)
    nodes, summary = out.stdout.splitlines()
    return json.loads(nodes), json.loads(summary)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_spans_count_code_points_and_strong_words_are_marked():
    text = "Great fit 😞 but 质量差"  # the emoji is two UTF-16 units, one code point
    words = [{"text": "Great", "start": 0, "end": 5, "score": 0.30},
             {"text": "fit", "start": 6, "end": 9, "score": 0.01},
             {"text": "😞", "start": 10, "end": 11, "score": -0.2},
             {"text": "but", "start": 12, "end": 15, "score": 0.0},
             {"text": "质量差", "start": 16, "end": 19, "score": -0.1}]
    explanation = {"label": "positive", "model_version": 3, "truncated": False,
                   "probabilities": {"positive": 0.81, "negative": 0.19}, "words": words}
    nodes, summary = _render(text, explanation)
    assert "".join(n["text"] for n in nodes) == text
    marked = [(n["text"], n["cls"], n["strength"]) for n in nodes if n["tag"] == "mark"]
    assert marked == [("Great", "push-for", "1.00"), ("😞", "push-against", "0.67"),
                      ("质量差", "push-against", "0.33")]
    assert summary == ("Model v3 reads positive (81%); pushed by: Great, fit; "
                       "against: 😞, 质量差.")
