// The "Watch it learn" panel: the page's one training control and its one event stream. The teacher starts a run
// with the knobs (or the banner's button asks for one: "train-request"); everyone follows its Server-Sent Events,
// which are drawn here (figures.js) and announced on the bus as "run" (its state, for the banner) and "model-changed"
// (a new model answers). A link presets the knobs; values it gets wrong are said, not used.
import { api, byId, capitalise, emit, format, on, say, whoami } from "./common.js";
import { clearFigures, decode, drawFigures } from "./figures.js";

const KNOBS = ["model", "fast", "epochs", "batch_size", "hidden_units", "optimizer", "learning_rate",
  "validation_split", "seed", "train_digits"];
const INTEGER_KNOBS = ["epochs", "batch_size", "hidden_units", "seed", "train_digits"];
// Words a link may use besides the knobs: which knobs to hide, the projector view, and the teacher's token (the
// server takes it out of the address before the page ever sees it).
const LINK_WORDS = ["hide", "view", "token"];
const YES = ["1", "true", "yes", "on"];
const NO = ["0", "false", "no", "off"];
// The per-batch curve is an average that forgets over about this many steps: noisy enough to be honest, calm to
// read, and the same whether the points came 50 steps apart or 300.
const SMOOTHING_STEPS = 150;

const form = byId("knobs");
const buttons = { start: byId("live-start"), pause: byId("live-pause"), resume: byId("live-resume"), stop: byId("live-stop") };
const statusLine = byId("live-status");
const knobsNote = byId("knobs-note");
const progress = byId("live-progress");
const speed = byId("live-speed");
const linkElement = byId("live-link");
const params = new URLSearchParams(window.location.search);

let run = freshRun();
let drawPending = false;
let teacher = false;
let linkBase = `${window.location.origin}/`;
let idleText = "Not training.";

function freshRun() {
  return { state: "idle", paused: false, epochs: null, steps: null, points: [], epochsDone: [],
    weights: null, stripImages: null, stripLabels: null, guesses: null, confusion: null, confusionOn: "",
    classNames: null, snapshots: 0, message: "" };
}

// What a knob's field accepts, in words, from the field itself (its options, or its min and max).
function allowed(field, name) {
  if (field.type === "checkbox") return `one of ${[...YES, ...NO].join(", ")}`;
  if (field.tagName === "SELECT") return `one of ${[...field.options].map((option) => option.value).filter(Boolean).join(", ")}`;
  const kind = INTEGER_KNOBS.includes(name) ? "a whole number" : "a number";
  if (field.min !== "" && field.max !== "") return `${kind} from ${field.min} to ${field.max}`;
  return field.min !== "" ? `${kind}, ${field.min} or more` : kind;
}

function fits(field, name, text) {
  if (field.type === "checkbox") return [...YES, ...NO].includes(text.toLowerCase());
  if (field.tagName === "SELECT") return [...field.options].some((option) => option.value === text && text !== "");
  const value = Number(text);
  if (text === "" || !Number.isFinite(value)) return false;
  if (INTEGER_KNOBS.includes(name) && !Number.isInteger(value)) return false;
  return !(field.min !== "" && value < Number(field.min)) && !(field.max !== "" && value > Number(field.max));
}

// The knobs live in the URL, so a teacher's link presets them (`?epochs=2&hidden_units=32`) and may hide some
// (`&hide=optimizer,learning_rate`, or `hide=all`). A value out of range, or a name misspelt, is not used: the
// knobs' note says which and what is allowed, so a link that seems to work never trains something else.
function knobsFromUrl() {
  const ignored = [];
  for (const [name, raw] of params) {
    const text = raw.trim();
    const field = form.elements[name];
    if (KNOBS.includes(name)) {
      if (!fits(field, name, text)) ignored.push(`${name}=${text} (allowed: ${allowed(field, name)})`);
      else if (field.type === "checkbox") field.checked = YES.includes(text.toLowerCase());
      else field.value = text;
    } else if (!LINK_WORDS.includes(name)) {
      ignored.push(`${name} (no such setting; the knobs are ${KNOBS.join(", ")})`);
    }
  }
  const hidden = (params.get("hide") || "").split(",").map((name) => name.trim()).filter(Boolean);
  for (const name of hidden) {
    if (name !== "all" && !KNOBS.includes(name)) ignored.push(`hide=${name} (no knob of that name; the knobs are ${KNOBS.join(", ")}, or all)`);
  }
  for (const label of form.querySelectorAll("[data-knob]")) {
    label.hidden = hidden.includes("all") || hidden.includes(label.dataset.knob);
  }
  if (params.has("view") && params.get("view") !== "projector") ignored.push(`view=${params.get("view")} (allowed: projector)`);
  knobsNote.hidden = ignored.length === 0;
  say(knobsNote, ignored.length ? `Not taken from the link: ${ignored.join("; ")}.` : "", true);
}

function chosenKnobs() {
  const knobs = {};
  for (const name of KNOBS) {
    const field = form.elements[name];
    if (field.disabled) continue;
    if (field.type === "checkbox") {
      if (field.checked) knobs[name] = true;
    } else if (field.value.trim() !== "") {
      const text = field.value.trim();
      knobs[name] = field.type === "number" ? Number(text) : text;
      // A fraction for a whole-number knob goes as typed, so the server's 422 names the knob.
      if (field.type === "number" && INTEGER_KNOBS.includes(name) && !Number.isInteger(knobs[name])) knobs[name] = text;
    }
  }
  return knobs;
}

// The convnet has no hidden-units knob and a short recipe of its own, so those two knobs do not apply to it.
function showApplicable() {
  const convnet = form.elements.model.value === "convnet";
  form.elements.hidden_units.disabled = convnet;
  form.elements.fast.disabled = convnet;
  if (convnet) form.elements.fast.checked = false;
}

// The link carries the address students reach (the server's on the school's network), never this computer's own
// 127.0.0.1, which on a student's laptop is the student's laptop.
function updateLink() {
  const link = new URLSearchParams();
  for (const [name, value] of Object.entries(chosenKnobs())) link.set(name, String(value));
  for (const keep of ["hide", "view"]) if (params.has(keep)) link.set(keep, params.get(keep));
  const query = link.toString();
  linkElement.href = query ? `${linkBase}?${query}` : linkBase;
  history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
}

async function send(path, json) {
  try {
    await api(path, { method: "POST", json });
  } catch (error) {
    say(statusLine, error.message, true);
  }
}

function showButtons() {
  const running = run.state === "running";
  buttons.start.disabled = running;
  buttons.pause.disabled = !running || run.paused;
  buttons.resume.disabled = !running || !run.paused;
  buttons.stop.disabled = !running;
}

// Events arrive in bursts (a late joiner gets the whole run at once): each one updates the state, and drawing
// waits for the browser's next frame.
function onEvent(event) {
  const handle = HANDLERS[event.kind];
  if (handle) handle(event);
  showButtons();
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      draw();
    });
  }
}

const HANDLERS = {
  start(event) {
    run = freshRun();
    run.state = "running";
    run.knobs = event.knobs;
    run.message = "Starting…";
    clearFigures();
  },
  loading(event) { run.message = capitalise(event.text) + "…"; },
  begin(event) {
    run.message = event.text;
    run.stripImages = decode(event.strip.images);
    run.stripLabels = event.strip.labels;
    run.classNames = event.class_names;
    run.confusionOn = event.confusion_on;
  },
  loop(event) { run.epochs = event.epochs; run.steps = event.steps; run.message = "Compiling the training step…"; },
  epoch_begin(event) { run.epoch = event.epoch; run.message = `Epoch ${event.epoch}/${event.epochs}`; },
  step(event) {
    const previous = run.points.length ? run.points[run.points.length - 1] : null;
    const weight = previous ? 1 - Math.exp(-(event.global_step - previous.step) / SMOOTHING_STEPS) : 1;
    const smooth = (old, value) => (old === null || old === undefined || value === null ? value : old + weight * (value - old));
    run.points.push({ x: event.global_step / event.steps, step: event.global_step,
      loss: smooth(previous && previous.loss, event.batch_loss), accuracy: smooth(previous && previous.accuracy, event.batch_accuracy) });
    run.epoch = event.epoch;
    run.fraction = event.global_step / (event.epochs * event.steps);
    run.rate = event.steps_per_second;
    run.eta = event.eta_seconds;
    run.message = `Epoch ${event.epoch}/${event.epochs} · step ${event.step}/${event.steps} · loss ${format(event.loss, 4)} · accuracy ${format(event.accuracy, 4)}`;
  },
  snapshot(event) {
    if (event.weights) { run.weights = event.weights; run.snapshots += 1; }
    if (event.strip) run.guesses = event.strip;
  },
  epoch_end(event) {
    run.epochsDone.push({ x: event.epoch, loss: event.loss, accuracy: event.accuracy, val_loss: event.val_loss,
      val_accuracy: event.val_accuracy });
    const validation = event.val_accuracy !== undefined ? ` · validation accuracy ${format(event.val_accuracy, 4)}` : "";
    run.message = `Epoch ${event.epoch}/${event.epochs} done · loss ${format(event.loss, 4)} · accuracy ${format(event.accuracy, 4)}${validation}`;
  },
  evaluation(event) { run.confusion = event; run.guesses = event.strip; },
  paused() { run.paused = true; },
  resumed() { run.paused = false; },
  end(event) { run.message = capitalise(event.text) + "…"; run.eta = null; },
  saved(event) {
    run.state = "finished";
    run.fraction = 1;
    const accuracy = event.test_accuracy === null ? "" : `: test accuracy ${(event.test_accuracy * 100).toFixed(2)}%`;
    run.message = `${event.interrupted ? "Stopped early; saved" : "Trained and saved"} ${event.run}${accuracy}. It now answers your drawings.`;
    // The model that answers has changed: the model's line asks the server once.
    emit("model-changed", { run: event.run });
  },
  stopped(event) { run.state = "stopped"; run.message = capitalise(event.text) + "."; },
  failed(event) { run.state = "failed"; run.message = capitalise(event.text); run.error = true; },
};

function draw() {
  say(statusLine, run.message || idleText, Boolean(run.error));
  progress.value = run.fraction || 0;
  const parts = [];
  if (run.paused) parts.push("paused");
  if (run.rate) parts.push(`${Math.round(run.rate).toLocaleString("en")} steps per second`);
  if (run.eta !== null && run.eta !== undefined && run.state === "running" && !run.paused) parts.push(`about ${Math.ceil(run.eta)} s left`);
  speed.textContent = parts.join(" · ");
  drawFigures(run);
  emit("run", { state: run.state, message: run.message, fraction: run.fraction || 0, paused: run.paused });
}

function follow() {
  // EventSource reconnects by itself after a dropped connection, sending the last id: the server replays the rest.
  const source = new EventSource("/api/train/events");
  source.onmessage = (message) => onEvent(JSON.parse(message.data));
}

async function start() {
  buttons.start.disabled = true;
  await send("/api/train", chosenKnobs());
  showButtons();
}

buttons.start.addEventListener("click", start);
buttons.pause.addEventListener("click", () => send("/api/train/pause"));
buttons.resume.addEventListener("click", () => send("/api/train/resume"));
buttons.stop.addEventListener("click", () => send("/api/train/stop"));
on("train-request", () => {
  if (teacher) start();
});
form.addEventListener("input", () => {
  showApplicable();
  updateLink();
});
form.addEventListener("submit", (event) => event.preventDefault());
// The projector view is the run alone, for the class to watch: a title of its own, on the screen and in the tab.
if (params.get("view") === "projector") {
  document.body.classList.add("projector");
  document.title = "firstnet: watch it learn";
  byId("page-title").textContent = "firstnet: watch it learn";
}
knobsFromUrl();
showApplicable();
showButtons();
whoami().then((me) => {
  teacher = me.role === "teacher";
  if (me.students_url) linkBase = me.students_url;
  idleText = teacher ? "Not training. Choose the knobs and press Start."
    : "Not training. When the teacher starts a run, you can watch it learn here.";
}).catch(() => {}).finally(() => {
  updateLink();
  draw();
  follow();
});
