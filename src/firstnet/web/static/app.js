// The drawing: a canvas the learner draws on (or a photo they upload), sent to /api/predict while they draw, and
// what the network answers: the digit, the ten bars, the 28x28 picture it saw and its strongest hidden units.
// It announces on the bus each new picture ("picture"), a cleared pad ("cleared") and each answer ("answer"), and
// hands the picture to whoever asks (`currentPicture`, for the collection).
import { ApiError, CLEAR_HINT, api, byId, emit, on, paintWeights, say } from "./common.js";

// While a stroke goes on, at most one prediction every 150 ms; when it ends, one more at once.
const LIVE_INTERVAL_MS = 150;
// MNIST strokes are about a tenth of the digit's height; on a 340-pixel square that is a broad pen.
const STROKE_WIDTH = 28;
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const DRAW_HINT = "Draw one digit, 0 to 9, large, in the black square.";

const pad = byId("pad");
const pen = pad.getContext("2d");
const seen = byId("seen");
const bars = byId("bars");
const digitOutput = byId("digit");
const confidence = byId("confidence");
const message = byId("message");
const units = byId("units");
const activeUnits = byId("active-units");
const upload = byId("upload");
const answerPanel = document.querySelector(".answer");
const digitLine = document.querySelector(".digit-line");
const notADigit = byId("not-a-digit");
const ifItWere = byId("if-it-were");
const barsNote = byId("bars-note");

// `photo` is the last uploaded file while it is the picture shown; drawing or clearing makes the pad's the picture.
const drawing = { active: false, last: null, inked: false, photo: null };
// `generation` grows whenever the picture is replaced (clear, upload), so answers about an older picture are dropped.
const requests = { generation: 0, busy: false, again: false, timer: null, pending: 0 };
let modelLoaded = false;

function buildBars() {
  for (let digit = 0; digit < 10; digit += 1) {
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    const item = document.createElement("li");
    item.append(label, track, value);
    bars.append(item);
  }
}

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  pen.strokeStyle = "#fff";
  pen.fillStyle = "#fff";
  pen.lineWidth = STROKE_WIDTH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  drawing.inked = false;
  drawing.photo = null;
  requests.generation += 1;
  clearTimeout(requests.timer);
  requests.timer = null;
  resetAnswer();
  showBusy();
  say(message, DRAW_HINT);
  emit("cleared");
}

function resetAnswer() {
  digitOutput.textContent = "?";
  confidence.textContent = "";
  showAbstention(null);
  bars.querySelectorAll("li").forEach((item) => {
    item.classList.remove("winner");
    item.querySelector(".fill").style.width = "0";
    item.querySelector(".value").textContent = "";
    item.removeAttribute("aria-label");
  });
  seen.getContext("2d").clearRect(0, 0, seen.width, seen.height);
  units.replaceChildren();
  activeUnits.textContent = "Each";
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

function startStroke(event) {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing.active = true;
  drawing.last = padPoint(event);
  pen.beginPath();
  pen.arc(drawing.last.x, drawing.last.y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
  pen.fill();
  drawing.inked = true;
  // A stroke over an uploaded photo makes the pad's drawing the picture to add.
  drawing.photo = null;
  emit("picture", { kind: "drawing" });
  predictSoon();
}

function continueStroke(event) {
  if (!drawing.active) return;
  event.preventDefault();
  // Coalesced events keep fast strokes smooth: the browser may merge several moves into one event.
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const move of moves.length ? moves : [event]) {
    const point = padPoint(move);
    pen.beginPath();
    pen.moveTo(drawing.last.x, drawing.last.y);
    pen.lineTo(point.x, point.y);
    pen.stroke();
    drawing.last = point;
  }
  predictSoon();
}

function endStroke() {
  if (!drawing.active) return;
  drawing.active = false;
  clearTimeout(requests.timer);
  requests.timer = null;
  predictCanvas();
  showBusy();
}

function predictSoon() {
  if (requests.timer === null) {
    requests.timer = setTimeout(() => {
      requests.timer = null;
      predictCanvas();
    }, LIVE_INTERVAL_MS);
  }
  showBusy();
}

// The answer panel is busy while a stroke goes on or an answer is on its way; screen readers (and tests) wait for it.
function showBusy() {
  const busy = drawing.active || requests.timer !== null || requests.pending > 0 || requests.again;
  answerPanel.setAttribute("aria-busy", String(busy));
}

function predictCanvas() {
  if (!drawing.inked || !modelLoaded) return;
  // One request at a time: strokes made meanwhile are sent as soon as the answer is back.
  if (requests.busy) {
    requests.again = true;
    return;
  }
  requests.busy = true;
  predict({ json: { image: pad.toDataURL("image/png") } }).finally(() => {
    requests.busy = false;
    if (requests.again) {
      requests.again = false;
      predictCanvas();
    }
  });
}

async function predict(request) {
  const generation = requests.generation;
  let answer;
  requests.pending += 1;
  showBusy();
  try {
    answer = (await api("/api/predict", { method: "POST", ...request })).data;
  } catch (error) {
    if (generation !== requests.generation || !(error instanceof ApiError)) return;
    say(message, error.message, true);
    // No model after all (or no longer): the model's own module asks the server again and says so.
    if (error.status === 503) emit("model-missing");
    return;
  } finally {
    requests.pending -= 1;
    // A queued canvas request starts right after this one: stay busy until it is sent.
    setTimeout(showBusy, 0);
  }
  if (generation === requests.generation) showAnswer(answer);
}

function showAnswer(answer) {
  const best = answer.digit;
  // A run of named classes (Fashion-MNIST, your own pictures) answers by name; MNIST's names are its digits.
  const names = answer.class_names || answer.probabilities.map((_, digit) => String(digit));
  const label = answer.label ?? String(best);
  digitOutput.textContent = label;
  confidence.textContent = `${(answer.probabilities[best] * 100).toFixed(1)}% sure`;
  bars.querySelectorAll("li").forEach((item, digit) => {
    if (names[digit] !== undefined) item.querySelector(".label").textContent = names[digit];
    const percent = answer.probabilities[digit] * 100;
    item.classList.toggle("winner", digit === best);
    item.querySelector(".fill").style.width = `${percent}%`;
    item.querySelector(".value").textContent = `${percent.toFixed(1)}%`;
    item.setAttribute("aria-label", `${names[digit] ?? digit}: ${percent.toFixed(1)} percent`);
  });
  drawInput(answer.input);
  drawUnits(answer.hidden || [], answer.active_units, answer.hidden_units);
  showAbstention(answer.not_a_digit === true ? answer : null);
  if (answer.not_a_digit === true) {
    say(message, `The network says this does not look like a digit. Keep drawing, or ${CLEAR_HINT} to start again.`);
  } else {
    say(message, `The network reads a ${label}. Keep drawing, or ${CLEAR_HINT} to start again.`);
  }
  emit("answer", { digit: best, label, answer });
}

// The honest answer for a picture unlike the digits the network learned: said in words, with what it would have
// answered beside it, smaller; the bars stay, marked as what it would say if it were a digit. `answer` is null
// for a digit (or while the run's rule is still being learnt).
function showAbstention(answer) {
  const abstains = answer !== null;
  digitLine.hidden = abstains;
  notADigit.hidden = !abstains;
  barsNote.hidden = !abstains;
  bars.classList.toggle("hypothetical", abstains);
  if (!abstains) return;
  const sure = answer.calibrated_probability ?? answer.probability;
  ifItWere.textContent = `if it were one: ${answer.label ?? answer.digit} (${Math.round(sure * 100)}%)`;
}

function drawInput(rows) {
  const picture = seen.getContext("2d").createImageData(28, 28);
  rows.flat().forEach((value, index) => {
    picture.data.set([value, value, value, 255], index * 4);
  });
  seen.getContext("2d").putImageData(picture, 0, 0);
}

function drawUnits(hidden, active, total) {
  units.replaceChildren();
  if (active !== null && active !== undefined) {
    activeUnits.textContent = `${active} of ${total} units fire for this drawing. Each`;
  }
  for (const unit of hidden) {
    const item = document.createElement("li");
    const picture = document.createElement("canvas");
    paintWeights(picture, unit.weights.flat(), 28, 28);
    picture.setAttribute("role", "img");
    const caption = document.createElement("div");
    caption.textContent = `#${unit.unit} · ${unit.activation.toFixed(2)}`;
    item.append(picture, caption);
    let label = `hidden unit ${unit.unit}, activation ${unit.activation.toFixed(2)}`;
    if (unit.votes) {
      const favourite = unit.votes.indexOf(Math.max(...unit.votes));
      const vote = document.createElement("div");
      vote.className = "vote";
      vote.textContent = `votes ${favourite}`;
      item.append(vote);
      label += `, votes most for ${favourite}`;
    }
    picture.setAttribute("aria-label", label);
    units.append(item);
  }
}

async function uploadPicture() {
  const file = upload.files[0];
  upload.value = "";
  if (!file) return;
  if (file.size > MAX_UPLOAD_BYTES) {
    say(message, `${file.name} is larger than 2 MB; a picture of one digit needs far less.`, true);
    return;
  }
  clearPad();
  drawing.photo = file;
  emit("picture", { kind: "photo" });
  say(message, `Reading ${file.name}…`);
  try {
    // Show the picture on the pad, fitted inside it; the server still reads the original file.
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const width = bitmap.width * scale;
    const height = bitmap.height * scale;
    pen.drawImage(bitmap, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
    drawing.inked = true;
  } catch (error) {
    // Not something the browser can draw; the server will say what is wrong with it.
  }
  if (!modelLoaded) {
    say(message, "No trained model yet: the network answers once one is trained (see above).", true);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  await predict({ body: form });
}

// The picture to add to the collection: the uploaded photo as it came, else the pad's drawing as a PNG; null when
// there is nothing to add yet.
export async function currentPicture() {
  if (drawing.photo) return { blob: drawing.photo, name: drawing.photo.name };
  if (!drawing.inked) return null;
  const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  return { blob, name: "drawing.png" };
}

function onKey(event) {
  const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement ||
    event.target instanceof HTMLSelectElement;
  // A key pressed in an open dialog belongs to the dialog (Esc closes it).
  if (document.querySelector("dialog[open]")) return;
  if (event.key === "Escape" || (!typing && (event.key === "Delete" || event.key === "Backspace"))) {
    event.preventDefault();
    clearPad();
  }
}

on("model", (info) => {
  modelLoaded = Boolean(info.loaded);
  // A picture drawn before the model was there is answered as soon as it is.
  if (modelLoaded && drawing.inked && digitOutput.textContent === "?") {
    if (drawing.photo) {
      const form = new FormData();
      form.append("file", drawing.photo, drawing.photo.name);
      predict({ body: form });
    } else {
      predictCanvas();
    }
  }
});

buildBars();
clearPad();
pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", continueStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);
byId("clear-button").addEventListener("click", () => {
  clearPad();
  pad.focus();
});
upload.addEventListener("change", uploadPicture);
document.addEventListener("keydown", onKey);
