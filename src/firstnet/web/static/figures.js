// The live panel's figures, drawn from the run's state (live.js keeps it): the loss and accuracy curves, the first
// layer's weights, the strip of fixed test digits with the current guesses, and the confusion matrix.
import { byId, emit, format, paintWeights } from "./common.js";

const LINE = "#0b57d0";
const VALIDATION = "#e8590c";

const lossCanvas = byId("live-loss");
const accuracyCanvas = byId("live-accuracy");
const weightsBox = byId("live-weights");
const strip = byId("live-strip");
const confusion = byId("live-confusion");

// The pictures of an event come as base64 int8 with their shape.
export function decode(encoded) {
  const bytes = Uint8Array.from(atob(encoded.int8), (character) => character.charCodeAt(0));
  return { values: new Int8Array(bytes.buffer), shape: encoded.shape, scale: encoded.scale };
}

export function clearFigures() {
  weightsBox.replaceChildren();
  strip.replaceChildren();
  confusion.replaceChildren();
  emit("confusion-cleared");
  delete weightsBox.dataset.drawn;
  delete confusion.dataset.drawn;
}

export function drawFigures(run) {
  const epochs = run.epochs || (run.knobs && run.knobs.epochs) || 1;
  drawCurve(lossCanvas, run.points, run.epochsDone, "loss", "val_loss", epochs, null);
  drawCurve(accuracyCanvas, run.points, run.epochsDone, "accuracy", "val_accuracy", epochs, 1);
  lossCanvas.dataset.points = String(run.points.length);
  drawWeights(run);
  drawStrip(run);
  drawConfusion(run);
}

function drawCurve(canvas, points, epochsDone, key, validationKey, epochs, top) {
  const pen = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  const left = 44;
  const bottom = 24;
  pen.clearRect(0, 0, width, height);
  const values = [...points.map((point) => point[key]), ...epochsDone.flatMap((epoch) => [epoch[key], epoch[validationKey]])]
    .filter((value) => typeof value === "number");
  const highest = top ?? Math.max(0.1, ...values) * 1.05;
  const lowest = top === 1 ? Math.max(0, Math.min(1, ...values) - 0.05) : 0;
  const x = (value) => left + ((width - left - 8) * value) / epochs;
  const y = (value) => height - bottom - ((height - bottom - 8) * (value - lowest)) / (highest - lowest || 1);
  pen.strokeStyle = "#999";
  pen.fillStyle = "#555";
  pen.font = "12px system-ui, sans-serif";
  pen.beginPath();
  pen.moveTo(left, 8);
  pen.lineTo(left, height - bottom);
  pen.lineTo(width - 8, height - bottom);
  pen.stroke();
  for (let epoch = 0; epoch <= epochs; epoch += Math.max(1, Math.ceil(epochs / 10))) pen.fillText(String(epoch), x(epoch) - 3, height - 8);
  pen.fillText(format(highest, 2), 2, 16);
  pen.fillText(format(lowest, 2), 2, height - bottom);
  pen.fillText("epochs", width - 50, height - bottom - 4);
  pen.strokeStyle = LINE;
  pen.lineWidth = 2;
  const drawn = points.filter((point) => typeof point[key] === "number");
  pen.beginPath();
  drawn.forEach((point, index) => (index ? pen.lineTo : pen.moveTo).call(pen, x(point.x), y(point[key])));
  pen.stroke();
  if (drawn.length === 1) {
    // One point makes no line (a short epoch reports only its last step): show it as a dot.
    pen.fillStyle = LINE;
    pen.fillRect(x(drawn[0].x) - 2, y(drawn[0][key]) - 2, 4, 4);
  }
  for (const [name, colour] of [[key, LINE], [validationKey, VALIDATION]]) {
    const marks = epochsDone.filter((epoch) => typeof epoch[name] === "number");
    pen.fillStyle = colour;
    pen.strokeStyle = colour;
    if (name === validationKey && marks.length > 1) {
      pen.beginPath();
      marks.forEach((epoch, index) => (index ? pen.lineTo : pen.moveTo).call(pen, x(epoch.x), y(epoch[name])));
      pen.stroke();
    }
    for (const epoch of marks) {
      pen.beginPath();
      pen.arc(x(epoch.x), y(epoch[name]), 4.5, 0, 2 * Math.PI);
      pen.fill();
    }
  }
}

function drawWeights(run) {
  if (!run.weights || weightsBox.dataset.drawn === String(run.snapshots)) return;
  const pictures = decode(run.weights.pictures);
  const [count, rows, columns] = pictures.shape;
  const filters = run.weights.what === "filters";
  byId("live-weights-title").textContent = filters
    ? `The first ${count} convolution filters (3×3), as they learn` : `First layer's weights of ${count} hidden units, as they learn`;
  while (weightsBox.children.length < count) {
    const picture = document.createElement("canvas");
    picture.setAttribute("role", "img");
    weightsBox.append(picture);
  }
  [...weightsBox.children].forEach((picture, unit) => {
    const size = rows * columns;
    paintWeights(picture, pictures.values.subarray(unit * size, (unit + 1) * size), rows, columns);
    picture.setAttribute("aria-label", `${filters ? "filter" : "hidden unit"} ${unit}`);
  });
  weightsBox.dataset.drawn = String(run.snapshots);
}

function drawStrip(run) {
  if (!run.stripImages) return;
  const [count, rows, columns] = run.stripImages.shape;
  if (strip.children.length !== count) {
    strip.replaceChildren();
    for (let index = 0; index < count; index += 1) {
      const cell = document.createElement("div");
      const picture = document.createElement("canvas");
      picture.width = columns;
      picture.height = rows;
      const image = picture.getContext("2d").createImageData(columns, rows);
      for (let pixel = 0; pixel < rows * columns; pixel += 1) {
        // The pictures come as -127..127 for 0..255; ink is drawn dark on light paper.
        const ink = Math.round(((run.stripImages.values[index * rows * columns + pixel] / 127) * 255));
        image.data.set([255 - ink, 255 - ink, 255 - ink, 255], pixel * 4);
      }
      picture.getContext("2d").putImageData(image, 0, 0);
      cell.append(picture, document.createElement("span"));
      strip.append(cell);
    }
  }
  if (!run.guesses) return;
  const names = run.classNames || [];
  [...strip.children].forEach((cell, index) => {
    const guess = run.guesses.guesses[index];
    const label = run.stripLabels[index];
    cell.className = guess === label ? "right" : "wrong";
    cell.querySelector("span").textContent = `${names[guess] ?? guess} ${Math.round(run.guesses.confidence[index] * 100)}%`;
    cell.title = `a ${names[label] ?? label}, read as ${names[guess] ?? guess}`;
  });
}

function drawConfusion(run) {
  const shown = run.confusion;
  if (!shown || confusion.dataset.drawn === String(shown.seq)) return;
  const names = run.classNames || shown.confusion.map((_, index) => String(index));
  // Built with the DOM, not markup: the page's Content-Security-Policy allows no inline style attributes, and class
  // names are the user's own words.
  const cell = (tag, text) => {
    const made = document.createElement(tag);
    made.textContent = text;
    return made;
  };
  const header = document.createElement("tr");
  header.append(cell("th", "true ↓ read →"), ...names.map((name) => cell("th", name)));
  const rows = [header];
  shown.confusion.forEach((counts, truth) => {
    const total = counts.reduce((sum, count) => sum + count, 0) || 1;
    const row = document.createElement("tr");
    row.append(cell("th", names[truth]));
    counts.forEach((count, guess) => {
      const share = count / total;
      // Each count is a button: it opens the cell to the digits it counts (cells.js).
      const td = document.createElement("td");
      const opener = cell("button", String(count));
      opener.type = "button";
      opener.disabled = count === 0;
      opener.dataset.true = String(truth);
      opener.dataset.predicted = String(guess);
      opener.setAttribute("aria-label", `${count} ${names[truth]} read as ${names[guess]}: show them`);
      opener.addEventListener("click", () => emit("confusion-cell", { true: truth, predicted: guess, count, names }));
      td.append(opener);
      td.style.background = truth === guess ? `rgba(43,138,62,${share})` : `rgba(201,42,42,${Math.min(1, share * 3)})`;
      td.style.color = share > 0.5 ? "#fff" : "#111";
      row.append(td);
    });
    rows.push(row);
  });
  confusion.replaceChildren(...rows);
  const after = shown.after_epochs === 0 ? "before training" : `after ${shown.after_epochs} epoch${shown.after_epochs === 1 ? "" : "s"}`;
  const seen = shown.confusion.flat().reduce((a, b) => a + b, 0);
  byId("live-confusion-title").textContent = `Confusion matrix ${after}, on ${seen} ${shown.on} (accuracy ${format(shown.accuracy * 100, 1)}%)`;
  confusion.dataset.drawn = String(shown.seq);
  emit("confusion-drawn", { seq: shown.seq });
}
