// What every part of the page shares: element lookup, one way to say things, one way to call the API, who the
// visitor is, and a small event bus, so that the modules talk through events instead of reaching into each other.

export const byId = (id) => document.getElementById(id);

// The modules announce what happened here (a new answer, a cleared pad, a training event, a picture added) and
// listen for what concerns them; none of them needs to know which others exist.
const bus = new EventTarget();

export function emit(name, detail = {}) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  bus.addEventListener(name, (event) => handler(event.detail));
}

// One line of text in an element, as text (never markup), marked as an error when it is one.
export function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// A phone or a tablet (a finger: no hover, a coarse pointer) has no keyboard to press Esc on, so messages name the
// on-screen button there instead. style.css hides the keyboard hints under the same query.
export const TOUCH = window.matchMedia("(hover: none) and (pointer: coarse)").matches;
export const CLEAR_HINT = TOUCH ? "press Clear" : "press Esc";

export const NO_SERVER = "The server did not answer: is `firstnet serve` still running?";

export class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// A 422's detail is pydantic's list of problems; each names the field and what is allowed. Anything else the
// server says is one sentence already.
export function explain(detail, status) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((problem) => {
      const where = (problem.loc || []).filter((part) => part !== "body").join(".") || "request";
      return `${where}: ${problem.msg}`;
    }).join("; ");
  }
  return `the server said ${status}`;
}

function xsrfToken() {
  const found = document.cookie.split(";").map((part) => part.trim()).find((part) => part.startsWith("_xsrf="));
  return found ? decodeURIComponent(found.slice("_xsrf=".length)) : "";
}

// fetch for the page's API: JSON in (`json`) and out, the XSRF token on every request that changes something (the
// browser's Origin header already proves where it comes from, but old browsers send none), and every failure as an
// ApiError whose message is one line fit to show.
export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const options = { method, headers: { ...headers } };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (body !== undefined) {
    options.body = body;
  }
  if (!["GET", "HEAD"].includes(method)) options.headers["X-XSRF-Token"] = xsrfToken();
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(NO_SERVER, 0);
  }
  let answer = null;
  if (response.status !== 204) {
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(explain(answer && answer.detail, response.status), response.status,
      response.headers.get("Retry-After"));
  }
  return { status: response.status, data: answer };
}

let whoamiPromise = null;

// Who opened the page (teacher or student) and how the class joins, asked once for all modules. The body gets the
// role as its class, which shows and hides the parts of the page that belong to each.
export function whoami() {
  if (!whoamiPromise) {
    whoamiPromise = api("/api/class").then(({ data }) => {
      document.body.classList.toggle("teacher", data.role === "teacher");
      document.body.classList.toggle("student", data.role !== "teacher");
      return data;
    }, (error) => {
      whoamiPromise = null;
      throw error;
    });
  }
  return whoamiPromise;
}

// The teacher's settings change during the class (review first): a module that changes them updates the cache.
export function remember(classInfo) {
  whoamiPromise = Promise.resolve(classInfo);
}

// A small DOM builder: a tag, its class, its text (always as text), and children.
export function element(tag, { className, text, attributes = {} } = {}, ...children) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined && text !== null) made.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  made.append(...children);
  return made;
}

// A 28x28 picture with its caption below, for the collection's thumbnails.
export function thumbnail(source, caption, alt = `a ${caption}`) {
  const image = element("img", { attributes: { alt, width: "28", height: "28" } });
  image.src = source;
  return element("figure", {}, image, element("figcaption", { text: caption }));
}

export function percent(value) {
  if (value === null || value === undefined) return "–";
  return `${(value * 100).toFixed(value === 1 || value === 0 ? 0 : 1)}%`;
}

export function format(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

export function capitalise(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
}

// Weights drawn as colours: white is zero, the stronger the weight the deeper the orange (excites) or blue (inhibits).
const EXCITE = [217, 72, 15];
const INHIBIT = [24, 100, 171];

export function weightColour(weight, largest) {
  const strength = Math.min(1, Math.abs(weight) / (largest || 1));
  const hue = weight >= 0 ? EXCITE : INHIBIT;
  return [...hue.map((channel) => Math.round(255 + (channel - 255) * strength)), 255];
}

// A canvas showing `values` (rows x columns) as weight colours.
export function paintWeights(canvas, values, rows, columns) {
  canvas.width = columns;
  canvas.height = rows;
  let largest = 0;
  for (const value of values) largest = Math.max(largest, Math.abs(value));
  const pen = canvas.getContext("2d");
  const image = pen.createImageData(columns, rows);
  values.forEach((value, index) => image.data.set(weightColour(value, largest), index * 4));
  pen.putImageData(image, 0, 0);
}
