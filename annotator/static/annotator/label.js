// Labeling page: one item at a time, keyboard first, no page reloads.
// Item data is only ever put in the page with textContent (never innerHTML).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("label-config").textContent);
  const csrf = document.querySelector("#csrf-holder [name=csrfmiddlewaretoken]").value;
  const labelByKey = new Map(config.labels.map((l) => [String(l.key).toLowerCase(), l.name]));
  const $ = (id) => document.getElementById(id);
  const help = $("help");

  let current = null;
  let shownAt = performance.now();
  let busy = false;
  let explaining = localStorage.getItem("annotator-explain") === "1";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showNotice(text, isError) {
    const box = $("notice");
    box.textContent = text || "";
    box.classList.toggle("error", Boolean(isError));
    box.hidden = !text;
  }

  function renderProgress(p) {
    $("mine-today").textContent = p.mine_today;
    $("project-done").textContent = p.done;
    $("project-total").textContent = p.total;
    $("project-bar").style.width = (p.total ? (100 * p.done) / p.total : 0).toFixed(1) + "%";
  }

  function renderBody(item) {
    const body = $("item-body");
    body.replaceChildren();
    body.className = "item-body kind-" + item.kind;
    if (item.turns.length) {
      for (const turn of item.turns) {
        const row = el("div", "turn");
        row.dataset.speaker = turn.speaker.toLowerCase();
        row.append(el("span", "speaker", turn.speaker || "—"), el("p", "turn-text", turn.text));
        body.append(row);
      }
    } else {
      body.append(el("p", "text", item.text));
    }
    if (!item.turns.length && item.kind === "query") body.classList.add("short");
    else if (!item.turns.length && item.text.length <= 120) body.classList.add("brief");
  }

  function renderItem(item) {
    current = item;
    $("item").hidden = !item;
    $("queue-done").hidden = Boolean(item);
    document.querySelectorAll(".label-btn").forEach((b) => {
      b.disabled = !item;
      b.classList.toggle("chosen", Boolean(item) && b.dataset.label === item.current_label);
    });
    if (!item) return;

    const badges = $("item-badges");
    badges.replaceChildren(el("span", "badge", item.kind));
    if (item.overlap) badges.append(el("span", "badge overlap", "overlap"));
    if (item.gold) badges.append(el("span", "badge gold", "gold"));
    if (item.current_label) {
      badges.append(el("span", "badge changing", "changing your label: " + item.current_label));
    }
    badges.append(el("span", "badge muted", "#" + item.id));
    if (item.near_duplicates) {
      const n = item.near_duplicates;
      badges.append(el("span", "badge duplicates", n + " near-duplicate" + (n === 1 ? "" : "s") + " still open"));
    }
    if (item.suggestion) {
      const pct = Math.round(item.suggestion.confidence * 100);
      if (item.suggestion.source === "zero_shot") {
        // no trained model yet: the label whose description reads most like the text
        const badge = el("span", "badge suggestion zero-shot", "zero-shot guess: " + item.suggestion.label + " (" + pct + "%)");
        badge.title = item.suggestion.provenance + " (no model is trained yet)";
        badges.append(badge);
      } else {
        badges.append(el("span", "badge suggestion", "model suggests: " + item.suggestion.label + " (" + pct + "%)"));
      }
    }

    renderBody(item);
    renderWhy(item);

    const meta = $("item-meta");
    meta.replaceChildren();
    for (const [key, value] of item.meta) {
      const pair = el("div");
      pair.append(el("dt", "", key), el("dd", "", value));
      meta.append(pair);
    }
    meta.hidden = !item.meta.length;
    shownAt = performance.now();
  }

  // The words that pushed the suggestion (key w), fetched for the item on screen only.
  async function renderWhy(item) {
    const why = $("item-why");
    const button = document.querySelector("[data-action=why]");
    button.disabled = !item;
    button.classList.toggle("chosen", explaining);
    why.hidden = !(item && explaining);
    if (why.hidden) return;
    if (!item.explain_url) {
      why.textContent = item.no_explanation;
      return;
    }
    why.textContent = "Finding the words that pushed the suggestion…";
    let explanation;
    try {
      explanation = await Explain.load(item.explain_url);
    } catch (error) {
      if (current === item) why.textContent = error.message;
      return;
    }
    if (current !== item || !explaining) return;
    Explain.render($("item-body").querySelector(".text"), item.text, explanation);
    why.textContent = Explain.summary(explanation);
  }

  function toggleWhy() {
    if (!current) return;
    explaining = !explaining;
    localStorage.setItem("annotator-explain", explaining ? "1" : "0");
    renderBody(current);
    renderWhy(current);
  }

  function render(data) {
    if (data.progress) renderProgress(data.progress);
    showNotice(data.notice || "");
    renderItem(data.item);
  }

  async function call(url, fields) {
    const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (fields) {
      options.method = "POST";
      options.headers["X-CSRFToken"] = csrf;
      options.body = new URLSearchParams(fields);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      showNotice("Network problem: nothing was saved. Try again.", true);
      return null;
    }
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (!response.ok) {
      showNotice(data.error || data.notice || "Error " + response.status, true);
      return null;
    }
    return data;
  }

  async function act(work) {
    if (busy) return;
    busy = true;
    document.body.classList.add("busy");
    try {
      const data = await work();
      if (data) render(data);
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  function submit(label) {
    if (!current) return;
    const seconds = ((performance.now() - shownAt) / 1000).toFixed(1);
    act(() => call(config.urls.submit, { item: current.id, label: label, seconds: seconds }));
  }

  function skip() {
    if (!current) return;
    act(() => call(config.urls.skip, { item: current.id }));
  }

  function undo() {
    act(() => call(config.urls.undo));
  }

  function toggleHelp() {
    if (help.open) help.close();
    else help.showModal();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select")) return;
    const key = event.key.toLowerCase();
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (help.open) return;
    if (labelByKey.has(key)) {
      event.preventDefault();
      submit(labelByKey.get(key));
    } else if (key === "s") {
      event.preventDefault();
      skip();
    } else if (key === "u" || event.key === "Backspace") {
      event.preventDefault();
      undo();
    } else if (key === "w") {
      event.preventDefault();
      toggleWhy();
    }
  });

  document.querySelectorAll(".label-btn").forEach((button) => {
    button.addEventListener("click", () => submit(button.dataset.label));
  });
  document.querySelector("[data-action=skip]").addEventListener("click", skip);
  document.querySelector("[data-action=undo]").addEventListener("click", undo);
  document.querySelector("[data-action=help]").addEventListener("click", toggleHelp);
  document.querySelector("[data-action=why]").addEventListener("click", toggleWhy);

  render(config.initial);
})();
