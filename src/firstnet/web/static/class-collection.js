// The teacher's part of "Our handwriting": the whole class's pictures (added lately), how well the network reads
// them, fine-tuning on them, and export and import. None of it is a student's: the server answers them 403, and the
// page does not show it to them.
import { api, byId, emit, on, percent, say, thumbnail, whoami } from "./common.js";

// A fine-tuning run or an import is a job on the server: while one goes on, its state is asked this often.
const FOLLOW_MS = 1000;

const scoreButton = byId("collection-score");
const finetuneButton = byId("collection-finetune");
const importInput = byId("collection-import");
const result = byId("collection-result");
const perDigit = byId("collection-per-digit");
const wrong = byId("collection-wrong");
const recent = byId("collection-recent");

let following = null;

function showSummary(summary) {
  recent.replaceChildren(...summary.recent.slice(0, 12).map((item) => thumbnail(item.picture, item.label)));
  const tuning = summary.finetune;
  finetuneButton.hidden = summary.total < summary.finetune_ready && tuning.state !== "running";
  finetuneButton.disabled = tuning.state === "running";
  if (tuning.state === "running") {
    say(result, tuning.message || "Fine-tuning…");
    if (!following) following = setInterval(refresh, FOLLOW_MS);
  } else if (following) {
    clearInterval(following);
    following = null;
    say(result, tuning.state === "finished" ? finetuneLine(tuning.result) : tuning.message, tuning.state === "failed");
    // The server loads the fine-tuned run: the model's line asks which it is now.
    if (tuning.state === "finished") emit("model-changed");
  }
}

function finetuneLine(tuned) {
  if (!tuned) return "Fine-tuned.";
  return `Fine-tuned and loaded: on our held-out digits ${percent(tuned.before.ours)} → ${percent(tuned.after.ours)}, ` +
    `on MNIST ${percent(tuned.before.mnist_test)} → ${percent(tuned.after.mnist_test)}.`;
}

async function refresh() {
  try {
    showSummary((await api("/api/collection")).data);
  } catch (error) {
    // The server is gone (the drawing's line says so), or this is not the teacher's page.
  }
}

async function score() {
  say(result, "Scoring our digits…");
  let report;
  try {
    report = (await api("/api/collection/score")).data;
  } catch (error) {
    say(result, error.message, true);
    return;
  }
  say(result, `On MNIST ${percent(report.mnist_test)}, on our digits ${percent(report.ours)} ` +
    `(${report.correct} of ${report.count}; likely between ${percent(report.low)} and ${percent(report.high)})` +
    (report.few ? ". Only a few pictures: add more for a surer number." : ".") +
    (report.note ? ` (${report.note.replace(/^note: /, "")})` : ""));
  perDigit.replaceChildren();
  const head = perDigit.insertRow();
  for (const name of ["digit", "right", "accuracy", "95% interval"]) {
    const cell = document.createElement("th");
    cell.textContent = name;
    head.append(cell);
  }
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
  try {
    await api("/api/collection/finetune", { method: "POST" });
  } catch (error) {
    say(result, error.message, true);
    finetuneButton.disabled = false;
    return;
  }
  say(result, "Fine-tuning on our digits…");
  following = following || setInterval(refresh, FOLLOW_MS);
}

// An import runs as a job on the server: the page sends the zip, then asks how far it got until it is done.
async function importZip() {
  const file = importInput.files[0];
  importInput.value = "";
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  say(result, `Importing ${file.name}…`);
  try {
    await api("/api/collection/import", { method: "POST", body: form });
  } catch (error) {
    say(result, error.message, true);
    return;
  }
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
    let job;
    try {
      job = (await api("/api/collection/import")).data;
    } catch (error) {
      say(result, error.message, true);
      return;
    }
    if (job.state === "running") continue;
    const report = job.report || {};
    say(result, job.state === "finished"
      ? `Imported ${file.name}: ${report.added ?? 0} added, ${report.already ?? 0} already there, ` +
        `${report.skipped ?? 0} skipped, ${report.conflicts ?? 0} with another label.`
      : job.message || `the import ended: ${job.state}`, job.state !== "finished");
    refresh();
    return;
  }
}

scoreButton.addEventListener("click", score);
finetuneButton.addEventListener("click", finetune);
importInput.addEventListener("change", importZip);
whoami().then((me) => {
  if (me.role !== "teacher") return;
  on("added", refresh);
  on("collection-changed", refresh);
  refresh();
}).catch(() => {});
