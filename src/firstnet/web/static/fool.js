// Fool it: a test digit the network reads right, changed pixel by pixel too little for a person to see until the
// network reads another digit (POST /api/fool, firstnet.fool on the server). Three pictures: the digit as read, the
// changed digit as read, and the change magnified.
import { api, byId, element, on, percent, say } from "./common.js";

// MNIST has 10,000 test digits; the server says how many the loaded run's test set has with each answer.
let testDigits = 10000;
let index = null;
let target = 3;
let busy = false;

const panel = byId("fool");
const pickButton = byId("fool-pick");
const indexText = byId("fool-index");
const targets = byId("fool-targets");
const foolButton = byId("fool-button");
const message = byId("fool-message");
const pictures = byId("fool-pictures");
const person = byId("fool-person");

// A 28x28 picture in grey, as MNIST's digits are drawn on the page: white ink on black.
function drawGrey(canvas, rows) {
  const pen = canvas.getContext("2d");
  const picture = pen.createImageData(28, 28);
  rows.flat().forEach((value, pixel) => picture.data.set([value, value, value, 255], pixel * 4));
  pen.putImageData(picture, 0, 0);
}

// The change, magnified so that its largest pixel is full strength: red where a pixel was made brighter, blue darker.
function drawDifference(canvas, rows, largest) {
  const pen = canvas.getContext("2d");
  const picture = pen.createImageData(28, 28);
  rows.flat().forEach((value, pixel) => {
    const strength = Math.min(1, Math.abs(value) / (largest || 1));
    const colour = value >= 0 ? [255, 60, 40] : [40, 120, 255];
    picture.data.set([...colour.map((channel) => Math.round(channel * strength)), 255], pixel * 4);
  });
  pen.putImageData(picture, 0, 0);
}

function chooseTarget(digit) {
  target = digit;
  targets.querySelectorAll("button").forEach((button) => {
    const on = Number(button.dataset.digit) === digit;
    button.classList.toggle("chosen", on);
    button.setAttribute("aria-pressed", String(on));
  });
  showReady();
}

function showReady() {
  foolButton.disabled = busy || index === null;
  foolButton.textContent = index === null ? "Fool it" : `Fool it: make test digit ${index} read as ${target}`;
}

function pick() {
  index = Math.floor(Math.random() * testDigits);
  indexText.textContent = `test digit ${index}`;
  pictures.hidden = true;
  person.textContent = "";
  say(message, "Now choose the digit it should read, and press Fool it.");
  showReady();
}

async function foolIt() {
  if (index === null || busy) return;
  busy = true;
  showReady();
  say(message, "Looking for the smallest change that fools it… (a few seconds; a convnet takes longer)");
  try {
    const { data } = await api("/api/fool", { method: "POST", json: { index, target, min_probability: 0.9 } });
    show(data);
  } catch (error) {
    pictures.hidden = true;
    person.textContent = "";
    say(message, error.message, true);
  } finally {
    busy = false;
    showReady();
  }
}

function show(result) {
  testDigits = result.test_digits;
  drawGrey(byId("fool-original"), result.original);
  drawGrey(byId("fool-changed"), result.fooled);
  drawDifference(byId("fool-difference"), result.difference, result.linf);
  byId("fool-original-caption").textContent = `a ${result.label}, read as ${result.read} (${percent(result.read_probability)})`;
  byId("fool-changed-caption").textContent =
    `changed, read as ${result.fooled_read} (${percent(result.probabilities[result.fooled_read])})`;
  byId("fool-difference-caption").textContent = `the change, magnified ${Math.round(255 / Math.max(result.linf, 1))}×`;
  pictures.hidden = false;
  if (result.fooled_it) {
    say(message, `Each pixel moved by at most ${result.linf} of 255 levels (L2 size ${Math.round(result.l2)}): the network now ` +
      `reads ${result.target}, ${percent(result.probability)} sure.`);
  } else {
    say(message, `Not fooled: changing each pixel by up to ${result.bound} of 255 levels gives ${result.target} only ` +
      `${percent(result.probability)}.`);
  }
  person.textContent = `To a person it is still a ${result.label}.`;
}

for (let digit = 0; digit < 10; digit += 1) {
  const button = element("button", { text: digit, attributes: { type: "button", "aria-pressed": "false" } });
  button.dataset.digit = String(digit);
  button.addEventListener("click", () => chooseTarget(digit));
  targets.append(button);
}
chooseTarget(target);
pickButton.addEventListener("click", pick);
foolButton.addEventListener("click", foolIt);
// Only a run on MNIST's digits can be fooled: it has their test digits to start from.
on("model", (info) => {
  panel.hidden = !(info.loaded && info.fools);
});
