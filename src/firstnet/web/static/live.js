// The "Watch it learn" panel: start a run with the knobs, follow its Server-Sent Events, draw the network changing.
"use strict";

(() => {
  const KNOBS = ["model", "fast", "epochs", "batch_size", "hidden_units", "optimizer", "learning_rate",
    "validation_split", "seed", "train_digits"];
  const INTEGER_KNOBS = ["epochs", "batch_size", "hidden_units", "seed", "train_digits"];
  // The per-batch curve is an average that forgets over about this many steps: noisy enough to be honest, calm to
  // read, and the same whether the points came 50 steps apart or 300.
  const SMOOTHING_STEPS = 150;
  const EXCITE = [217, 72, 15];
  const INHIBIT = [24, 100, 171];
  const LINE = "#0b57d0";
  const VALIDATION = "#e8590c";

  const byId = (id) => document.getElementById(id);
  const form = byId("knobs");
  const buttons = { start: byId("live-start"), pause: byId("live-pause"), resume: byId("live-resume"), stop: byId("live-stop") };
  const statusLine = byId("live-status");
  const progress = byId("live-progress");
  const speed = byId("live-speed");
  const lossCanvas = byId("live-loss");
  const accuracyCanvas = byId("live-accuracy");
  const weightsBox = byId("live-weights");
  const strip = byId("live-strip");
  const confusion = byId("live-confusion");
  const params = new URLSearchParams(window.location.search);

  let run = freshRun();
  let drawPending = false;

  function freshRun() {
    return { state: "idle", paused: false, epochs: null, steps: null, points: [], epochsDone: [],
      weights: null, stripImages: null, stripLabels: null, guesses: null, confusion: null, confusionOn: "",
      classNames: null, snapshots: 0, message: "" };
  }

  // The knobs live in the URL, so a teacher's link presets them (`?epochs=2&hidden_units=32`) and may hide some
  // (`&hide=optimizer,learning_rate`, or `hide=all`).
  function knobsFromUrl() {
    for (const name of KNOBS) {
      const field = form.elements[name];
      if (!params.has(name) || !field) continue;
      if (field.type === "checkbox") field.checked = ["1", "true", "yes"].includes(params.get(name));
      else field.value = params.get(name);
    }
    const hidden = (params.get("hide") || "").split(",").map((name) => name.trim());
    for (const label of form.querySelectorAll("[data-knob]")) {
      label.hidden = hidden.includes("all") || hidden.includes(label.dataset.knob);
    }
    if (params.get("view") === "projector") document.body.classList.add("projector");
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
        if (field.type === "number" && INTEGER_KNOBS.includes(name) && Number.isInteger(knobs[name]) === false) knobs[name] = text;
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

  function updateLink() {
    const link = new URLSearchParams();
    for (const [name, value] of Object.entries(chosenKnobs())) link.set(name, String(value));
    for (const keep of ["hide", "view"]) if (params.has(keep)) link.set(keep, params.get(keep));
    const query = link.toString();
    byId("live-link").href = query ? `?${query}` : "./";
    history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
  }

  async function send(path, body) {
    const options = { method: "POST" };
    if (body !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    let response;
    let answer;
    try {
      response = await fetch(path, options);
      answer = await response.json();
    } catch (error) {
      say("The server did not answer: is `firstnet serve` still running?", true);
      return;
    }
    if (!response.ok) say(explain(answer.detail, response.status), true);
  }

  // A 422's detail is pydantic's list of problems; each says which knob and what is allowed.
  function explain(detail, status) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((problem) => `${(problem.loc || []).filter((part) => part !== "body").join(".") || "knobs"}: ${problem.msg}`).join("; ");
    }
    return `the server said ${status}`;
  }

  function say(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
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
      weightsBox.replaceChildren();
      strip.replaceChildren();
      confusion.replaceChildren();
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
      run.step = event.step;
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
      if (typeof refreshModel === "function") refreshModel();
    },
    stopped(event) { run.state = "stopped"; run.message = capitalise(event.text) + "."; },
    failed(event) { run.state = "failed"; run.message = capitalise(event.text); run.error = true; },
  };

  function draw() {
    say(run.message || "Not training. Choose the knobs and press Start.", Boolean(run.error));
    progress.value = run.fraction || 0;
    const parts = [];
    if (run.paused) parts.push("paused");
    if (run.rate) parts.push(`${Math.round(run.rate).toLocaleString("en")} steps per second`);
    if (run.eta !== null && run.eta !== undefined && run.state === "running" && !run.paused) parts.push(`about ${Math.ceil(run.eta)} s left`);
    speed.textContent = parts.join(" · ");
    const epochs = run.epochs || (run.knobs && run.knobs.epochs) || 1;
    drawCurve(lossCanvas, run.points, run.epochsDone, "loss", "val_loss", epochs, null);
    drawCurve(accuracyCanvas, run.points, run.epochsDone, "accuracy", "val_accuracy", epochs, 1);
    lossCanvas.dataset.points = String(run.points.length);
    drawWeights();
    drawStrip();
    drawConfusion();
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
    pen.beginPath();
    points.filter((point) => typeof point[key] === "number").forEach((point, index) => {
      if (index === 0) pen.moveTo(x(point.x), y(point[key]));
      else pen.lineTo(x(point.x), y(point[key]));
    });
    pen.stroke();
    const drawn = points.filter((point) => typeof point[key] === "number");
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

  function decode(encoded) {
    const bytes = Uint8Array.from(atob(encoded.int8), (character) => character.charCodeAt(0));
    return { values: new Int8Array(bytes.buffer), shape: encoded.shape, scale: encoded.scale };
  }

  function drawWeights() {
    if (!run.weights || weightsBox.dataset.drawn === String(run.snapshots)) return;
    const pictures = decode(run.weights.pictures);
    const [count, rows, columns] = pictures.shape;
    byId("live-weights-title").textContent = run.weights.what === "filters"
      ? `The first ${count} convolution filters (3×3), as they learn` : `First layer's weights of ${count} hidden units, as they learn`;
    while (weightsBox.children.length < count) {
      const picture = document.createElement("canvas");
      picture.setAttribute("role", "img");
      weightsBox.append(picture);
    }
    [...weightsBox.children].forEach((picture, unit) => {
      picture.width = columns;
      picture.height = rows;
      const size = rows * columns;
      const values = pictures.values.subarray(unit * size, (unit + 1) * size);
      let largest = 1;
      for (const value of values) largest = Math.max(largest, Math.abs(value));
      const image = picture.getContext("2d").createImageData(columns, rows);
      values.forEach((value, index) => {
        const strength = Math.abs(value) / largest;
        const hue = value >= 0 ? EXCITE : INHIBIT;
        image.data.set([...hue.map((channel) => Math.round(255 + (channel - 255) * strength)), 255], index * 4);
      });
      picture.getContext("2d").putImageData(image, 0, 0);
      picture.setAttribute("aria-label", `${run.weights.what === "filters" ? "filter" : "hidden unit"} ${unit}`);
    });
    weightsBox.dataset.drawn = String(run.snapshots);
  }

  function drawStrip() {
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
        const caption = document.createElement("span");
        cell.append(picture, caption);
        strip.append(cell);
      }
    }
    if (!run.guesses) return;
    [...strip.children].forEach((cell, index) => {
      const guess = run.guesses.guesses[index];
      const label = run.stripLabels[index];
      const names = run.classNames || [];
      cell.className = guess === label ? "right" : "wrong";
      cell.querySelector("span").textContent = `${names[guess] ?? guess} ${Math.round(run.guesses.confidence[index] * 100)}%`;
      cell.title = `a ${names[label] ?? label}, read as ${names[guess] ?? guess}`;
    });
  }

  function drawConfusion() {
    const shown = run.confusion;
    if (!shown || confusion.dataset.drawn === String(shown.seq)) return;
    const names = run.classNames || shown.confusion.map((_, index) => String(index));
    // Built with the DOM, not markup: the page's Content-Security-Policy allows no inline style attributes.
    const cell = (tag, text) => {
      const element = document.createElement(tag);
      element.textContent = text;
      return element;
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
        const td = cell("td", String(count));
        td.style.background = truth === guess ? `rgba(43,138,62,${share})` : `rgba(201,42,42,${Math.min(1, share * 3)})`;
        td.style.color = share > 0.5 ? "#fff" : "#111";
        row.append(td);
      });
      rows.push(row);
    });
    confusion.replaceChildren(...rows);
    const after = shown.after_epochs === 0 ? "before training" : `after ${shown.after_epochs} epoch${shown.after_epochs === 1 ? "" : "s"}`;
    byId("live-confusion-title").textContent = `Confusion matrix ${after}, on ${shown.confusion.flat().reduce((a, b) => a + b, 0)} ${shown.on} (accuracy ${format(shown.accuracy * 100, 1)}%)`;
    confusion.dataset.drawn = String(shown.seq);
  }

  function format(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "–";
  }

  function capitalise(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
  }

  function follow() {
    // EventSource reconnects by itself after a dropped connection, sending the last id: the server replays the rest.
    const source = new EventSource("/api/train/events");
    source.onmessage = (message) => onEvent(JSON.parse(message.data));
  }

  buttons.start.addEventListener("click", () => send("/api/train", chosenKnobs()));
  buttons.pause.addEventListener("click", () => send("/api/train/pause"));
  buttons.resume.addEventListener("click", () => send("/api/train/resume"));
  buttons.stop.addEventListener("click", () => send("/api/train/stop"));
  form.addEventListener("input", () => {
    showApplicable();
    updateLink();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  knobsFromUrl();
  showApplicable();
  updateLink();
  showButtons();
  follow();
})();
