// Why this answer: each pixel's share of the network's score for the digit it chose (integrated gradients, computed
// by the server with every answer), drawn over the drawing as firstnet.explain.overlay draws it: red where the ink
// pushed towards the digit, blue where it pushed against, the drawing in grey underneath.
import { byId, on } from "./common.js";

const figure = byId("why-figure");
const canvas = byId("why");
const method = byId("why-method");
const whyDigit = byId("why-digit");

// The same colours and grey as explain.overlay, so the page and `firstnet explain` show one picture.
const TOWARDS = [1.0, 0.15, 0.1];
const AGAINST = [0.1, 0.45, 1.0];
const GREY = 0.25;

export function overlay(input, attributions) {
  const values = attributions.flat();
  const largest = Math.max(1e-12, ...values.map(Math.abs));
  const pixels = input.flat();
  const rgba = new Uint8ClampedArray(values.length * 4);
  values.forEach((value, index) => {
    const strength = Math.max(-1, Math.min(1, value / largest));
    const grey = (GREY * pixels[index]) / 255;
    for (let channel = 0; channel < 3; channel += 1) {
      const colour = grey + Math.max(strength, 0) * TOWARDS[channel] + Math.max(-strength, 0) * AGAINST[channel];
      rgba[index * 4 + channel] = Math.round(Math.max(0, Math.min(1, colour)) * 255);
    }
    rgba[index * 4 + 3] = 255;
  });
  return rgba;
}

function show(answer) {
  const explanation = answer && answer.explanation;
  // Runs on pictures other than 28x28 grey have no explanation: the figure stays hidden.
  figure.hidden = !explanation;
  if (!explanation) return;
  const rows = explanation.attributions.length;
  const columns = explanation.attributions[0].length;
  canvas.width = columns;
  canvas.height = rows;
  const pen = canvas.getContext("2d");
  const picture = pen.createImageData(columns, rows);
  picture.data.set(overlay(answer.input, explanation.attributions));
  pen.putImageData(picture, 0, 0);
  canvas.dataset.drawn = "true";
  whyDigit.textContent = `its answer, ${explanation.label ?? explanation.digit}`;
  method.textContent = `How: ${explanation.method}.`;
}

function clear() {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.drawn;
  figure.hidden = true;
}

on("answer", ({ answer }) => show(answer));
on("cleared", clear);
