// Highlights the words that pushed a prediction (scores from trainer/explain.py: the drop in
// the label's probability without the word). Built with text nodes only, never innerHTML.
// Spans count Unicode code points (Python's str indices), not UTF-16 units.
window.Explain = (function () {
  "use strict";

  const SHOWN_FROM = 0.15; // words below this share of the strongest score stay plain

  function render(container, text, explanation) {
    const chars = Array.from(text);
    const strongest = Math.max(1e-9, ...explanation.words.map((w) => Math.abs(w.score)));
    const piece = (from, to) => chars.slice(from, to).join("");
    container.replaceChildren();
    let at = 0;
    for (const word of explanation.words) {
      if (word.start > at) container.append(document.createTextNode(piece(at, word.start)));
      const strength = Math.abs(word.score) / strongest;
      if (strength < SHOWN_FROM) {
        container.append(document.createTextNode(piece(word.start, word.end)));
      } else {
        const mark = document.createElement("mark");
        mark.className = word.score > 0 ? "push-for" : "push-against";
        mark.style.setProperty("--strength", strength.toFixed(2));
        mark.title = (word.score > 0 ? "pushed toward " : "pushed away from ") +
          explanation.label + ": " + (word.score > 0 ? "−" : "+") +
          Math.abs(word.score * 100).toFixed(1) + " points without it";
        mark.textContent = piece(word.start, word.end);
        container.append(mark);
      }
      at = Math.max(at, word.end);
    }
    if (at < chars.length) container.append(document.createTextNode(piece(at, chars.length)));
  }

  function top(explanation, sign, k) {
    return explanation.words.filter((w) => sign * w.score > 0)
      .sort((a, b) => sign * (b.score - a.score)).slice(0, k).map((w) => w.text);
  }

  function summary(explanation) {
    const pct = Math.round(100 * (explanation.probabilities || {})[explanation.label] || 0);
    let line = "Model v" + explanation.model_version + " reads " + explanation.label +
      " (" + pct + "%)";
    const forWords = top(explanation, 1, 5), against = top(explanation, -1, 3);
    if (forWords.length) line += "; pushed by: " + forWords.join(", ");
    if (against.length) line += "; against: " + against.join(", ");
    if (explanation.truncated) {
      line += ` (a long text: only its first ${explanation.words.length} words were explained)`;
    }
    return line + ".";
  }

  async function load(url) {
    const response = await fetch(url, { credentials: "same-origin",
                                        headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || "Error " + response.status);
    return data;
  }

  // The admin's item review: explain the text once the page is shown.
  document.querySelectorAll("[data-explain-url]").forEach(async (container) => {
    const status = document.getElementById("review-explanation");
    try {
      const explanation = await load(container.dataset.explainUrl);
      render(container, explanation.text || container.textContent, explanation);
      if (status) status.textContent = summary(explanation);
    } catch (error) {
      if (status) status.textContent = error.message;
    }
  });

  return { render, summary, load };
})();
