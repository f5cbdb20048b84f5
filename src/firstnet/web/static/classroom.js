// The class: who opened the page (common.js's whoami marks the body "teacher" or "student"), how students join (the
// students' link as text and its QR code, in the teacher's class panel and on the projector), and for the teacher
// the "Review first" switch and the queue of pictures waiting for review, each with Accept and Reject.
import { api, byId, element, emit, on, remember, say, thumbnail, whoami } from "./common.js";

// The queue is asked again this often while the teacher's page is in view; an add from this page asks at once.
const REVIEW_POLL_MS = 4000;

const panel = byId("class-panel");
const reviewFirst = byId("review-first");
const grid = byId("review-grid");
const empty = byId("review-empty");
const count = byId("review-count");
const message = byId("class-message");

let pollTimer = null;

function showJoin(url) {
  const joinable = Boolean(url);
  byId("join").hidden = !joinable;
  byId("join-local").hidden = joinable;
  byId("projector-join").hidden = !joinable;
  if (!joinable) return;
  // The address is shown as text (a name given with --allow-host is the teacher's own words, never markup).
  const link = byId("join-link");
  link.href = url;
  link.textContent = url;
  byId("projector-link").textContent = url;
  byId("join-qr").src = "/api/class/qr.svg";
  byId("projector-qr").src = "/api/class/qr.svg";
}

function reviewCard(item) {
  const accept = element("button", { className: "accept", text: "Accept", attributes: { type: "button" } });
  const reject = element("button", { className: "reject", text: "Reject", attributes: { type: "button" } });
  const card = element("div", { className: "review-card" }, thumbnail(item.picture, `a ${item.label}`),
    element("div", { className: "review-buttons" }, accept, reject));
  card.dataset.id = item.id;
  accept.addEventListener("click", () => decide(item, true, card));
  reject.addEventListener("click", () => decide(item, false, card));
  return card;
}

async function decide(item, accept, card) {
  card.querySelectorAll("button").forEach((button) => { button.disabled = true; });
  try {
    await api(`/api/collection/review/${encodeURIComponent(item.id)}`, { method: "POST", json: { accept } });
    say(message, accept ? `Accepted: a ${item.label} joined the collection.` : `Rejected: that ${item.label} is gone.`);
    card.remove();
    emit("collection-changed");
  } catch (error) {
    say(message, error.message, true);
  }
  refreshQueue();
}

async function refreshQueue() {
  clearTimeout(pollTimer);
  pollTimer = null;
  try {
    const queue = (await api("/api/collection/review")).data;
    // Cards already shown stay (a teacher about to press Accept must not see the grid jump); new ones join them.
    const shown = new Set([...grid.children].map((card) => card.dataset.id));
    const waiting = new Set(queue.items.map((item) => item.id));
    [...grid.children].forEach((card) => { if (!waiting.has(card.dataset.id)) card.remove(); });
    grid.append(...queue.items.filter((item) => !shown.has(item.id)).map(reviewCard));
    reviewFirst.checked = queue.review_first;
    count.textContent = queue.items.length ? `(${queue.items.length})` : "";
    empty.hidden = queue.items.length > 0;
  } catch (error) {
    say(message, error.message, true);
  }
  schedule();
}

// Polling only while someone can see it: a teacher's page left in a background tab asks nothing.
function schedule() {
  clearTimeout(pollTimer);
  pollTimer = document.visibilityState === "visible" && panel.getClientRects().length ? setTimeout(refreshQueue, REVIEW_POLL_MS) : null;
}

async function setReviewFirst() {
  reviewFirst.disabled = true;
  try {
    const info = (await api("/api/class", { method: "POST", json: { review_first: reviewFirst.checked } })).data;
    remember(info);
    reviewFirst.checked = info.review_first;
    say(message, info.review_first ? "Review first is on: students' pictures wait here until you accept them."
      : "Review first is off: students' pictures join the collection at once.");
  } catch (error) {
    reviewFirst.checked = !reviewFirst.checked;
    say(message, error.message, true);
  }
  reviewFirst.disabled = false;
}

whoami().then((me) => {
  showJoin(me.students_url);
  if (me.role !== "teacher") return;
  reviewFirst.checked = me.review_first;
  reviewFirst.addEventListener("change", setReviewFirst);
  on("added", refreshQueue);
  document.addEventListener("visibilitychange", () => (document.visibilityState === "visible" ? refreshQueue() : schedule()));
  refreshQueue();
}).catch((error) => {
  say(byId("model-info"), error.message, true);
});
