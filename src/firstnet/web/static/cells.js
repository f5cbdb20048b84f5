// From a mistake to its pictures: a number in the live confusion matrix opens to the digits it counts, each with the
// probability of the digit the network read and of the right one (GET /api/train/cell). The open cell follows the
// matrix: at each new evaluation, and after the run, it shows that matrix's digits.
import { api, byId, on, say } from "./common.js";

// A diagonal cell counts a hundred digits or so: the surest hundred are shown.
const LIMIT = 100;

const box = byId("live-cell");
const title = byId("live-cell-title");
const gallery = byId("live-cell-pictures");
const table = byId("live-confusion");
let open = null;
let asked = 0;

// Whole percents: a caption under a picture 48 pixels wide.
function percent(value) {
  return `${Math.round(value * 100)}%`;
}

// A digit as the strip shows them: dark ink on light paper.
function picture(rows) {
  const canvas = document.createElement("canvas");
  canvas.width = rows[0].length;
  canvas.height = rows.length;
  const pen = canvas.getContext("2d");
  const image = pen.createImageData(canvas.width, canvas.height);
  rows.flat().forEach((value, pixel) => image.data.set([255 - value, 255 - value, 255 - value, 255], pixel * 4));
  pen.putImageData(image, 0, 0);
  return canvas;
}

function markOpen() {
  table.querySelectorAll("button").forEach((button) => {
    const here = open !== null && Number(button.dataset.true) === open.true && Number(button.dataset.predicted) === open.predicted;
    button.classList.toggle("open", here);
    button.setAttribute("aria-expanded", String(here));
  });
}

async function show(cell) {
  open = cell;
  markOpen();
  const question = (asked += 1);
  const names = cell.names;
  box.hidden = false;
  say(title, `Looking up the ${names[cell.true]}s read as ${names[cell.predicted]}…`);
  let answer;
  try {
    answer = (await api(`/api/train/cell?true=${cell.true}&predicted=${cell.predicted}&limit=${LIMIT}`)).data;
  } catch (error) {
    if (question === asked) say(title, error.message, true);
    return;
  }
  if (question !== asked) return;  // Another cell was clicked meanwhile.
  const read = cell.true === cell.predicted ? "read right" : `read as ${names[cell.predicted]}`;
  const shown = answer.shown < answer.count ? `; the ${answer.shown} surest shown` : "";
  const scores = cell.true === cell.predicted ? `how sure it was of ${names[cell.true]}`
    : `how sure it was of ${names[cell.predicted]}, then of ${names[cell.true]}`;
  say(title, `${answer.count} ${names[cell.true]}${answer.count === 1 ? "" : "s"} ${read}${shown}. Under each: ${scores}.`);
  gallery.replaceChildren(...answer.pictures.map((item) => {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = cell.true === cell.predicted ? percent(item.probability)
      : `${percent(item.probability)} · ${percent(item.true_probability)}`;
    const canvas = picture(item.picture);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `a ${names[cell.true]}, read as ${names[cell.predicted]} ${percent(item.probability)}`);
    figure.append(canvas, caption);
    return figure;
  }));
  gallery.dataset.count = String(answer.pictures.length);
}

function close() {
  open = null;
  asked += 1;
  box.hidden = true;
  gallery.replaceChildren();
  delete gallery.dataset.count;
}

on("confusion-cell", show);
// A new matrix (the next evaluation, or the final one) redraws the table: the open cell shows its digits again.
on("confusion-drawn", () => {
  if (open !== null) show(open);
});
on("confusion-cleared", close);
