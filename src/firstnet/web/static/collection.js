// The class collection on the page: label the drawing (or photo), add it, see the counts, score ours, fine-tune.
// It talks only to /api/collection (web/collection.py); the drawing itself stays app.js's.
"use strict";

(() => {
  const section = document.getElementById("collection");
  if (!section) return;
  const pad = document.getElementById("pad");
  const upload = document.getElementById("upload");
  const answerDigit = document.getElementById("digit");
  const picker = document.getElementById("label-picker");
  const addButton = document.getElementById("collection-add");
  const message = document.getElementById("collection-message");
  const counts = document.getElementById("collection-counts");
  const scoreButton = document.getElementById("collection-score");
  const finetuneButton = document.getElementById("collection-finetune");
  const result = document.getElementById("collection-result");
  const perDigit = document.getElementById("collection-per-digit");
  const wrong = document.getElementById("collection-wrong");
  const recent = document.getElementById("collection-recent");
  // The last uploaded photo: app.js empties the file input as soon as it reads it, so it is caught first, in the
  // capture phase. Drawing on the pad or clearing it means the picture to add is the pad's again.
  let photo = null;
  let chosen = null;
  let following = null;

  function say(text, isError = false) {
    message.textContent = text;
    message.classList.toggle("error", isError);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : `${(value * 100).toFixed(value === 1 || value === 0 ? 0 : 1)}%`;
  }

  function choose(digit) {
    chosen = digit;
    picker.querySelectorAll("button").forEach((button) => {
      const on = Number(button.dataset.digit) === digit;
      button.classList.toggle("chosen", on);
      button.setAttribute("aria-pressed", String(on));
    });
    addButton.disabled = chosen === null;
    addButton.textContent = chosen === null ? "Add to our collection" : `This is a ${chosen}: add it to our collection`;
  }

  for (let digit = 0; digit < 10; digit += 1) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = String(digit);
    button.dataset.digit = String(digit);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => choose(digit));
    picker.append(button);
  }

  // The network's answer is offered as the label; the learner corrects it when the network is wrong.
  new MutationObserver(() => {
    const digit = Number(answerDigit.textContent);
    if (Number.isInteger(digit) && answerDigit.textContent.trim() !== "") choose(digit);
  }).observe(answerDigit, { childList: true, characterData: true, subtree: true });

  document.addEventListener("change", (event) => {
    if (event.target === upload && upload.files[0]) photo = upload.files[0];
  }, true);
  pad.addEventListener("pointerdown", () => { photo = null; });
  document.getElementById("clear-button").addEventListener("click", () => { photo = null; choose(null); });

  function padPicture() {
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  }

  async function add() {
    if (chosen === null) return;
    const form = new FormData();
    const picture = photo || (await padPicture());
    form.append("file", picture, photo ? photo.name : "drawing.png");
    form.append("label", String(chosen));
    let response;
    let answer;
    try {
      response = await fetch("/api/collection", { method: "POST", body: form });
      answer = await response.json();
    } catch (error) {
      say("The server did not answer: is `firstnet serve` still running?", true);
      return;
    }
    if (!response.ok) {
      say(typeof answer.detail === "string" ? answer.detail : `the server said ${response.status}`, true);
      return;
    }
    say(answer.added ? `Added as a ${answer.item.label}. Thank you!` : `Already in the collection as a ${answer.item.label}.`);
    refresh();
  }

  function showCounts(summary) {
    counts.replaceChildren();
    for (let digit = 0; digit < 10; digit += 1) {
      const item = document.createElement("li");
      item.textContent = `${digit}: ${summary.counts[String(digit)]}`;
      counts.append(item);
    }
    const total = document.createElement("li");
    total.className = "total";
    total.textContent = `${summary.total} in all`;
    counts.append(total);
    recent.replaceChildren(...summary.recent.slice(0, 12).map((item) => thumbnail(item.picture, item.label)));
    const tuning = summary.finetune;
    finetuneButton.hidden = summary.total < summary.finetune_ready && tuning.state !== "running";
    finetuneButton.disabled = tuning.state === "running";
    if (tuning.state === "running") {
      result.textContent = tuning.message || "fine-tuning…";
      if (!following) following = setInterval(refresh, 1000);
    } else if (following) {
      clearInterval(following);
      following = null;
      result.textContent = tuning.state === "finished" ? finetuneLine(tuning.result) : tuning.message;
    }
  }

  function finetuneLine(tuned) {
    if (!tuned) return "Fine-tuned.";
    return `Fine-tuned and loaded: on our held-out digits ${percent(tuned.before.ours)} → ${percent(tuned.after.ours)}, ` +
      `on MNIST ${percent(tuned.before.mnist_test)} → ${percent(tuned.after.mnist_test)}.`;
  }

  function thumbnail(source, caption) {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.src = source;
    image.alt = `a ${caption}`;
    image.width = 28;
    image.height = 28;
    const text = document.createElement("figcaption");
    text.textContent = caption;
    figure.append(image, text);
    return figure;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/collection");
      if (response.ok) showCounts(await response.json());
    } catch (error) {
      // The server is gone; app.js says so.
    }
  }

  async function score() {
    result.textContent = "Scoring our digits…";
    const response = await fetch("/api/collection/score");
    const report = await response.json();
    if (!response.ok) {
      result.textContent = typeof report.detail === "string" ? report.detail : `the server said ${response.status}`;
      return;
    }
    result.textContent = `On MNIST ${percent(report.mnist_test)}, on our digits ${percent(report.ours)} ` +
      `(${report.correct} of ${report.count}; likely between ${percent(report.low)} and ${percent(report.high)})` +
      (report.few ? ". Only a few pictures: add more for a surer number." : ".") +
      (report.note ? ` (${report.note.replace(/^note: /, "")})` : "");
    perDigit.replaceChildren();
    const head = perDigit.insertRow();
    ["digit", "right", "accuracy", "95% interval"].forEach((name) => {
      const cell = document.createElement("th");
      cell.textContent = name;
      head.append(cell);
    });
    report.per_digit.filter((entry) => entry.total).forEach((entry) => {
      const row = perDigit.insertRow();
      [entry.digit, `${entry.correct}/${entry.total}`, percent(entry.accuracy),
        `${percent(entry.low)}–${percent(entry.high)}${entry.few ? " (few)" : ""}`].forEach((value) => {
        row.insertCell().textContent = String(value);
      });
    });
    wrong.replaceChildren(...report.worst.map((entry) => thumbnail(entry.picture, `${entry.true}, read ${entry.predicted}`)));
  }

  async function finetune() {
    finetuneButton.disabled = true;
    const response = await fetch("/api/collection/finetune", { method: "POST" });
    const answer = await response.json();
    if (!response.ok) {
      result.textContent = typeof answer.detail === "string" ? answer.detail : `the server said ${response.status}`;
      finetuneButton.disabled = false;
      return;
    }
    result.textContent = "Fine-tuning on our digits…";
    following = following || setInterval(refresh, 1000);
  }

  addButton.addEventListener("click", add);
  scoreButton.addEventListener("click", score);
  finetuneButton.addEventListener("click", finetune);
  choose(null);
  refresh();
})();
