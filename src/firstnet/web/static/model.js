// The model that answers: the line under the title, and the "No trained model yet" banner. It asks /api/model once
// at the start, again when a run is saved or a prediction finds no model, and never polls: a run's progress comes
// from the live panel's one event stream (live.js announces it on the bus as "run"), and the banner's button starts
// training through the live panel too ("train-request"), with its knobs.
import { ApiError, NO_SERVER, api, byId, capitalise, emit, on, say, whoami } from "./common.js";

const modelInfo = byId("model-info");
const banner = byId("no-model");
const bannerTitle = byId("no-model-title");
const trainButton = byId("train-button");
const training = byId("training");
const trainStatus = byId("train-status");
const trainProgress = byId("train-progress");

let loaded = null;
let asking = null;

// The model's facts as text nodes: run folders and class names are the user's own words, never markup.
function showModel(info) {
  loaded = Boolean(info.loaded);
  if (loaded) {
    const name = document.createElement("strong");
    name.textContent = info.run || info.model_path;
    const parts = [];
    if (typeof info.test_accuracy === "number") parts.push(`test accuracy ${(info.test_accuracy * 100).toFixed(2)}%`);
    if (info.epochs) parts.push(`${info.epochs} epochs`);
    if (info.hidden_units) parts.push(`${info.hidden_units} hidden units`);
    modelInfo.replaceChildren("Model ", name, ...parts.map((part) => ` · ${part}`));
  } else {
    modelInfo.textContent = document.body.classList.contains("teacher")
      ? `No trained model in ${info.runs_root}/ yet.` : "No trained model yet.";
    byId("train-command").textContent = info.train_command;
  }
  // The banner is for a page with no model at all: a model that answers is never "no trained model", even while
  // the teacher trains the next one (the live panel shows that run).
  banner.hidden = loaded;
  emit("model", info);
}

async function refresh() {
  // One question at a time: several reasons to ask at once (a run saved, a 503) get the same answer.
  if (asking) return asking;
  asking = (async () => {
    try {
      showModel((await api("/api/model")).data);
    } catch (error) {
      say(modelInfo, error instanceof ApiError ? error.message : NO_SERVER, true);
    } finally {
      asking = null;
    }
  })();
  return asking;
}

// The live panel's account of the run, shown in the banner while there is no model yet.
on("run", (run) => {
  const running = run.state === "running";
  trainButton.disabled = running;
  training.hidden = run.state === "idle" || loaded;
  trainStatus.textContent = capitalise(run.message || "");
  trainStatus.classList.toggle("error", run.state === "failed");
  trainProgress.hidden = !running;
  trainProgress.value = run.fraction || 0;
});

on("model-changed", () => refresh());
on("model-missing", () => refresh());
trainButton.addEventListener("click", () => emit("train-request"));

whoami().then((me) => {
  // A student cannot train: they are told who can, and the banner's button and terminal hint are not theirs.
  if (me.role !== "teacher") bannerTitle.textContent = "The teacher has not trained a model yet";
}).catch(() => {}).finally(refresh);
