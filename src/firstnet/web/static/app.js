// The playground page: draw on a canvas, send it to /api/predict while drawing, and show what the network answers.
"use strict";

// While a stroke goes on, at most one prediction every 150 ms; when it ends, one more at once.
const LIVE_INTERVAL_MS = 150;
// MNIST strokes are about a tenth of the digit's height; on a 340-pixel square that is a broad pen.
const STROKE_WIDTH = 28;
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const EXCITE = [217, 72, 15];
const INHIBIT = [24, 100, 171];

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const seen = document.getElementById("seen");
const bars = document.getElementById("bars");
const digitOutput = document.getElementById("digit");
const confidence = document.getElementById("confidence");
const message = document.getElementById("message");
const units = document.getElementById("units");
const activeUnits = document.getElementById("active-units");
const modelInfo = document.getElementById("model-info");
const noModel = document.getElementById("no-model");
const trainButton = document.getElementById("train-button");
const training = document.getElementById("training");
const trainStatus = document.getElementById("train-status");
const trainProgress = document.getElementById("train-progress");
const upload = document.getElementById("upload");
const answerPanel = document.querySelector(".answer");

const drawing = { active: false, last: null, inked: false };
// `generation` grows whenever the picture is replaced (clear, upload), so answers about an older picture are dropped.
const requests = { generation: 0, busy: false, again: false, timer: null, pending: 0 };
let modelLoaded = false;
let pollTimer = null;

function buildBars() {
  for (let digit = 0; digit < 10; digit += 1) {
    const item = document.createElement("li");
    item.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    item.querySelector(".label").textContent = String(digit);
    bars.appendChild(item);
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
  requests.generation += 1;
  clearTimeout(requests.timer);
  requests.timer = null;
  resetAnswer();
  showBusy();
  say("Draw one digit, 0 to 9, large, in the black square.");
}

function resetAnswer() {
  digitOutput.textContent = "?";
  confidence.textContent = "";
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

function say(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
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
  const body = JSON.stringify({ image: pad.toDataURL("image/png") });
  post({ method: "POST", headers: { "Content-Type": "application/json" }, body }).finally(() => {
    requests.busy = false;
    if (requests.again) {
      requests.again = false;
      predictCanvas();
    }
  });
}

async function post(options) {
  const generation = requests.generation;
  let answer;
  let response;
  requests.pending += 1;
  showBusy();
  try {
    response = await fetch("/api/predict", options);
    answer = await response.json();
  } catch (error) {
    say("The server did not answer: is `firstnet serve` still running?", true);
    return;
  } finally {
    requests.pending -= 1;
    // A queued canvas request starts right after this one: stay busy until it is sent.
    setTimeout(showBusy, 0);
  }
  if (generation !== requests.generation) return;
  if (!response.ok) {
    say(typeof answer.detail === "string" ? answer.detail : `the server said ${response.status}`, true);
    if (response.status === 503) refreshModel();
    return;
  }
  showAnswer(answer);
}

function showAnswer(answer) {
  const best = answer.digit;
  // A run of named classes (Fashion-MNIST, your own pictures) answers by name; MNIST's names are its digits.
  const names = answer.class_names || answer.probabilities.map((_, digit) => String(digit));
  digitOutput.textContent = answer.label ?? String(best);
  confidence.textContent = `${(answer.probabilities[best] * 100).toFixed(1)}% sure`;
  bars.querySelectorAll("li").forEach((item, digit) => {
    if (names[digit] !== undefined) item.querySelector(".label").textContent = names[digit];
    const percent = answer.probabilities[digit] * 100;
    item.classList.toggle("winner", digit === best);
    item.querySelector(".fill").style.width = `${percent}%`;
    item.querySelector(".value").textContent = `${percent.toFixed(1)}%`;
    item.setAttribute("aria-label", `${digit}: ${percent.toFixed(1)} percent`);
  });
  drawInput(answer.input);
  drawUnits(answer.hidden || [], answer.active_units, answer.hidden_units);
  say(`The network reads a ${answer.label ?? best}. Keep drawing, or press Esc to start again.`);
}

function drawInput(rows) {
  const picture = seen.getContext("2d").createImageData(28, 28);
  rows.flat().forEach((value, index) => {
    picture.data.set([value, value, value, 255], index * 4);
  });
  seen.getContext("2d").putImageData(picture, 0, 0);
}

function weightColour(weight, largest) {
  // White is a weight of zero; the stronger the weight, the deeper the orange (excites) or blue (inhibits).
  const strength = Math.min(1, Math.abs(weight) / largest);
  const hue = weight >= 0 ? EXCITE : INHIBIT;
  return hue.map((channel) => Math.round(255 + (channel - 255) * strength));
}

function drawUnits(hidden, active, total) {
  units.replaceChildren();
  if (active !== null && active !== undefined) {
    activeUnits.textContent = `${active} of ${total} units fire for this drawing. Each`;
  }
  for (const unit of hidden) {
    const item = document.createElement("li");
    const picture = document.createElement("canvas");
    picture.width = 28;
    picture.height = 28;
    const weights = unit.weights.flat();
    const largest = Math.max(...weights.map(Math.abs)) || 1;
    const pixels = picture.getContext("2d").createImageData(28, 28);
    weights.forEach((weight, index) => pixels.data.set([...weightColour(weight, largest), 255], index * 4));
    picture.getContext("2d").putImageData(pixels, 0, 0);
    picture.setAttribute("role", "img");
    const caption = document.createElement("div");
    caption.textContent = `#${unit.unit} · ${unit.activation.toFixed(2)}`;
    item.append(picture, caption);
    if (unit.votes) {
      const favourite = unit.votes.indexOf(Math.max(...unit.votes));
      const vote = document.createElement("div");
      vote.className = "vote";
      vote.textContent = `votes ${favourite}`;
      item.append(vote);
      picture.setAttribute("aria-label", `hidden unit ${unit.unit}, activation ${unit.activation.toFixed(2)}, votes most for ${favourite}`);
    } else {
      picture.setAttribute("aria-label", `hidden unit ${unit.unit}, activation ${unit.activation.toFixed(2)}`);
    }
    units.append(item);
  }
}

async function uploadPicture() {
  const file = upload.files[0];
  upload.value = "";
  if (!file) return;
  if (file.size > MAX_UPLOAD_BYTES) {
    say(`${file.name} is larger than 2 MB; a picture of one digit needs far less.`, true);
    return;
  }
  clearPad();
  say(`Reading ${file.name}…`);
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
    say("No trained model yet: train one first (see above).", true);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  await post({ method: "POST", body: form });
}

function showModel(info) {
  modelLoaded = Boolean(info.loaded);
  const status = info.training || { state: "idle" };
  if (modelLoaded) {
    const parts = [`Model <strong></strong>`];
    if (typeof info.test_accuracy === "number") parts.push(`test accuracy ${(info.test_accuracy * 100).toFixed(2)}%`);
    if (info.epochs) parts.push(`${info.epochs} epochs`);
    if (info.hidden_units) parts.push(`${info.hidden_units} hidden units`);
    modelInfo.innerHTML = parts.join(" · ");
    modelInfo.querySelector("strong").textContent = info.run || info.model_path;
  } else {
    modelInfo.textContent = `No trained model in ${info.runs_root}/ yet.`;
    document.getElementById("train-command").textContent = info.train_command;
  }
  noModel.hidden = modelLoaded && status.state !== "running";
  const running = status.state === "running";
  trainButton.disabled = running;
  training.hidden = status.state === "idle";
  const said = status.message || "";
  trainStatus.textContent = said.charAt(0).toUpperCase() + said.slice(1) + (running ? "…" : "");
  trainProgress.hidden = !running;
  trainProgress.value = status.fraction || 0;
  clearTimeout(pollTimer);
  if (running) pollTimer = setTimeout(refreshModel, 1000);
  if (modelLoaded && drawing.inked && digitOutput.textContent === "?") predictCanvas();
}

async function refreshModel() {
  try {
    const response = await fetch("/api/model");
    showModel(await response.json());
  } catch (error) {
    modelInfo.textContent = "The server did not answer: is `firstnet serve` still running?";
    pollTimer = setTimeout(refreshModel, 3000);
  }
}

async function startTraining() {
  trainButton.disabled = true;
  const response = await fetch("/api/train", { method: "POST" });
  const answer = await response.json();
  if (response.ok) {
    showModel(answer);
  } else {
    trainStatus.textContent = answer.detail;
    refreshModel();
  }
}

function onKey(event) {
  const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement;
  if (event.key === "Escape" || (!typing && (event.key === "Delete" || event.key === "Backspace"))) {
    event.preventDefault();
    clearPad();
  }
}

buildBars();
clearPad();
pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", continueStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);
document.getElementById("clear-button").addEventListener("click", () => {
  clearPad();
  pad.focus();
});
upload.addEventListener("change", uploadPicture);
trainButton.addEventListener("click", startTraining);
document.addEventListener("keydown", onKey);
refreshModel();
