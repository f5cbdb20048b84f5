// "Our handwriting", the part everyone has: label the drawing (or photo), add it to the class's collection, see the
// class's counts, your own pictures (with "Take back"), and how well the network reads your digits. A student is
// told what is kept before their first picture is added. The teacher's part of the collection is class-collection.js.
import { api, byId, element, emit, on, percent, say, thumbnail, whoami } from "./common.js";
import { currentPicture } from "./app.js";

const CONSENT_KEY = "firstnet-consent-given";
// While a student's picture waits for the teacher, the list is asked again this often, to show when it is in.
const WAITING_POLL_MS = 5000;

const picker = byId("label-picker");
const addButton = byId("collection-add");
const message = byId("collection-message");
const counts = byId("collection-counts");
const mineList = byId("mine");
const mineEmpty = byId("mine-empty");
const mineResult = byId("mine-result");
const mineRead = byId("mine-read");
const consent = byId("consent");

// The label to store: the network's guess is only offered (`offered`), until the learner picks a digit themselves
// (`picked`); from then on no answer changes it, so the collection holds what the learner says, not what the
// network reads. A cleared pad or a new photo starts again.
const label = { chosen: null, picked: false };
let role = "student";
let waitingTimer = null;

function choose(digit, picked) {
  label.chosen = digit;
  label.picked = picked;
  picker.querySelectorAll("button").forEach((button) => {
    const on = Number(button.dataset.digit) === digit;
    button.classList.toggle("chosen", on);
    button.setAttribute("aria-pressed", String(on));
  });
  addButton.disabled = digit === null;
  addButton.textContent = digit === null ? "Add to our collection" : `This is a ${digit}: add it to our collection`;
}

for (let digit = 0; digit < 10; digit += 1) {
  const button = element("button", { text: digit, attributes: { type: "button", "aria-pressed": "false" } });
  button.dataset.digit = String(digit);
  button.addEventListener("click", () => choose(digit, true));
  picker.append(button);
}

// Before a student's first picture: what the class keeps, and how to take it back; the answer is remembered in this
// browser. Resolves true when the student agrees.
async function agreed() {
  if (role === "teacher" || localStorage.getItem(CONSENT_KEY) === "yes") return true;
  byId("consent-text").textContent = (await whoami()).keeps;
  consent.returnValue = "";
  consent.showModal();
  byId("consent-add").focus();
  await new Promise((resolve) => consent.addEventListener("close", resolve, { once: true }));
  if (consent.returnValue !== "add") return false;
  localStorage.setItem(CONSENT_KEY, "yes");
  return true;
}

async function add() {
  const digit = label.chosen;
  const picture = await currentPicture();
  if (digit === null) return;
  if (!picture) {
    say(message, "Draw a digit first (or upload a photo of one).", true);
    return;
  }
  if (!(await agreed())) {
    say(message, "Not added. Your picture stays on this page only.");
    return;
  }
  const form = new FormData();
  form.append("file", picture.blob, picture.name);
  form.append("label", String(digit));
  let answer;
  try {
    answer = await api("/api/collection", { method: "POST", body: form });
  } catch (error) {
    say(message, error.message, true);
    return;
  }
  const { item, state } = answer.data;
  say(message, {
    added: `Added as a ${item.label}. Thank you!`,
    already: `Already in the collection as a ${item.label}.`,
    pending: `Sent as a ${item.label}: it joins the collection when the teacher has looked at it.`,
  }[state]);
  showCounts(answer.data);
  emit("added", { state });
  refreshMine();
}

function showCounts(summary) {
  const items = [];
  for (let digit = 0; digit < 10; digit += 1) {
    items.push(element("li", { text: `${digit}: ${summary.counts[String(digit)] ?? 0}` }));
  }
  items.push(element("li", { className: "total", text: `${summary.total} in all` }));
  counts.replaceChildren(...items);
}

function mineItem(item) {
  const waiting = item.state !== "in the collection";
  const takeBack = element("button", { text: "Take back", attributes: { type: "button" } });
  takeBack.addEventListener("click", () => takeBackPicture(item, takeBack));
  const state = element("span", { className: waiting ? "state waiting" : "state", text: item.state });
  const entry = element("li", {}, thumbnail(item.picture, `a ${item.label}`, `your ${item.label}`), state, takeBack);
  entry.dataset.id = item.id;
  return entry;
}

async function takeBackPicture(item, button) {
  button.disabled = true;
  try {
    await api(`/api/collection/${encodeURIComponent(item.id)}`, { method: "DELETE" });
    say(message, `Taken back: your ${item.label} is no longer in the collection.`);
    emit("collection-changed");
  } catch (error) {
    say(message, error.message, true);
  }
  refreshMine();
}

async function refreshMine() {
  clearTimeout(waitingTimer);
  let mine;
  try {
    mine = (await api("/api/collection/mine")).data;
  } catch (error) {
    return; // The server is gone; the drawing's own line says so.
  }
  showCounts(mine);
  mineList.replaceChildren(...mine.items.map(mineItem));
  mineEmpty.hidden = mine.items.length > 0;
  if (mine.items.some((item) => item.state !== "in the collection")) waitingTimer = setTimeout(refreshMine, WAITING_POLL_MS);
}

async function myScore() {
  say(mineResult, "Reading your digits…");
  mineRead.replaceChildren();
  let report;
  try {
    report = (await api("/api/collection/mine/score")).data;
  } catch (error) {
    say(mineResult, error.message, true);
    return;
  }
  if (!report.count) {
    say(mineResult, "None of your pictures is in the collection yet: add some first.");
    return;
  }
  say(mineResult, `It reads ${report.correct} of your ${report.count} digits right (${percent(report.accuracy)}).`);
  mineRead.replaceChildren(...report.pictures.map((picture) => element("li", {
    className: picture.read === picture.label ? "right" : "wrong",
    text: `your ${picture.label}: read as ${picture.read} (${percent(picture.probability)} sure)`,
  })));
}

on("answer", ({ digit, answer }) => {
  // A picture the network says is not a digit gets no label suggested: the learner says what it is, if anything.
  if (!label.picked) choose(answer && answer.not_a_digit === true ? null : digit, false);
});
on("cleared", () => choose(null, false));
on("picture", ({ kind }) => {
  // A new photo is a new picture: its label is asked again. More strokes on a drawing keep the learner's choice.
  if (kind === "photo") choose(null, false);
});
on("collection-changed", refreshMine);
addButton.addEventListener("click", add);
byId("mine-score").addEventListener("click", myScore);
choose(null, false);
whoami().then((me) => { role = me.role; }).catch(() => {});
refreshMine();
