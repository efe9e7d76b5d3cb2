// The page: upload images to /api/predict, show the answer (NORMAL, PNEUMONIA, UNCERTAIN: refer,
// or OUT_OF_SCOPE with its reason), the calibrated probability bar and Grad-CAM.
// Plain JavaScript, no external code. Text from files and the server goes in via textContent.
"use strict";

const PARALLEL = 4; // uploads in flight at once; the server batches them
const entries = [];
let sortKey = "index";
let sortUp = true;
let modelName = "";
let gradcam = true; // false for a model without Grad-CAM (an ONNX export)

const $ = (selector) => document.querySelector(selector);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmt = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "—");

// -- the model -------------------------------------------------------------------------------
async function loadModel() {
  try {
    const response = await fetch("/api/model");
    if (!response.ok) throw new Error(response.statusText);
    showModel(await response.json());
  } catch (err) {
    $("#model-name").textContent = "The model's details could not be loaded.";
  }
}

function showModel(card) {
  modelName = card.name;
  gradcam = card.gradcam !== false;
  const name = $("#model-name");
  name.textContent = "";
  name.append(el("strong", "", card.name));
  const parts = [];
  if (card.architecture) parts.push(`architecture ${card.architecture}`);
  if (card.run) parts.push(`run ${card.run}`);
  parts.push(`threshold ${fmt(card.threshold)}` +
             (card.threshold_method ? ` (${card.threshold_method})` : ""));
  if (card.uncertain_band) {
    parts.push(`uncertain: refer for ${fmt(card.uncertain_band[0])} ≤ P < ` +
               `${fmt(card.uncertain_band[1])}`);
  }
  parts.push(`input ${card.image_size}×${card.image_size}`);
  name.append(` — ${parts.join(", ")}.`);
  const trust = $("#trust");
  trust.textContent = "";
  if (card.calibration) trust.append(el("li", "", card.calibration));
  if (card.scope) trust.append(el("li", "", card.scope));
  trust.hidden = !trust.childNodes.length;
  const body = $("#validation tbody");
  body.textContent = "";
  for (const [key, title] of [["internal", "internal"], ["external", "external"]]) {
    const row = el("tr");
    row.append(el("th", "", title));
    row.lastChild.scope = "row";
    const figures = card.validation ? card.validation[key] : null;
    if (!figures) {
      const cell = el("td", "missing", "not measured");
      cell.colSpan = 6;
      row.append(cell);
    } else {
      row.append(el("td", "", figures.data || "—"));
      row.append(el("td", "", figures.n == null ? "—" : String(figures.n)));
      for (const k of ["auc", "accuracy", "sensitivity", "specificity"]) {
        row.append(el("td", "", fmt(figures[k])));
      }
    }
    body.append(row);
  }
  if (card.card_markdown) {
    $("#card pre").textContent = card.card_markdown;
    $("#card").hidden = false;
  }
}

// -- uploads ---------------------------------------------------------------------------------
function addFiles(files) {
  const fresh = [];
  const cards = document.createDocumentFragment();
  for (const file of files) {
    const entry = { index: entries.length + 1, file, name: file.name, state: "waiting" };
    entries.push(entry);
    entry.card = makeCard(entry);
    cards.append(entry.card);
    fresh.push(entry);
  }
  $("#results").prepend(cards); // the newest files first, in the order chosen
  renderTable();
  runQueue(fresh);
}

async function runQueue(queue) {
  const workers = [];
  for (let i = 0; i < Math.min(PARALLEL, queue.length); i += 1) {
    workers.push((async () => {
      while (queue.length) await analyse(queue.shift());
    })());
  }
  await Promise.all(workers);
}

async function analyse(entry) {
  entry.state = "working";
  updateStatus();
  const form = new FormData();
  form.append("file", entry.file, entry.file.name);
  try {
    const url = gradcam ? "/api/predict?gradcam=true" : "/api/predict";
    const response = await fetch(url, { method: "POST", body: form });
    let body = {};
    try { body = await response.json(); } catch (err) { body = {}; }
    if (!response.ok) throw new Error(body.detail || `the server answered ${response.status}`);
    Object.assign(entry, { state: "done", label: body.label, p: body.p_pneumonia,
                           threshold: body.threshold, model: body.model,
                           inScope: body.in_scope, scope: body.scope_score,
                           reason: body.reason });
    fillCard(entry, body);
  } catch (err) {
    entry.state = "failed";
    entry.error = err.message || "the request failed";
    failCard(entry);
  }
  entry.file = null; // the browser may let go of it
  renderTable();
  updateStatus();
}

function updateStatus() {
  const done = entries.filter((e) => e.state === "done").length;
  const failed = entries.filter((e) => e.state === "failed").length;
  const open = entries.length - done - failed;
  let text = `${done} of ${entries.length} analysed`;
  if (failed) text += `, ${failed} could not be read`;
  if (open) text += `, ${open} in progress…`;
  $("#status").textContent = text;
}

// -- one card per image ------------------------------------------------------------------------
function makeCard(entry) {
  const card = el("article", "result waiting");
  card.id = `result-${entry.index}`;
  card.append(el("h3", "name", entry.name));
  card.append(el("p", "state", "Analysing…"));
  return card;
}

const CARD_CLASS = { PNEUMONIA: "positive", NORMAL: "negative", UNCERTAIN: "uncertain",
                     OUT_OF_SCOPE: "outside" };
const SHOWN = { UNCERTAIN: "uncertain: refer", OUT_OF_SCOPE: "not a chest X-ray the model knows" };

function fillCard(entry, body) {
  const card = entry.card;
  card.className = `result ${CARD_CLASS[body.label] || "negative"}`;
  card.querySelector(".state").remove();
  if (body.label === "OUT_OF_SCOPE") {
    // No label, no probability, no heat map: the model has nothing to say about this image.
    const text = el("div", "text");
    text.append(el("p", "label", SHOWN.OUT_OF_SCOPE), el("p", "reason", body.reason));
    if (body.dicom_header) text.append(dicomLine(body.dicom_header));
    card.append(text);
    return;
  }
  const text = el("div", "text");
  text.append(el("p", "label", SHOWN[body.label] || body.label));
  if (body.dicom_header) text.append(dicomLine(body.dicom_header));
  if (body.reason) text.append(el("p", "reason", body.reason));
  text.append(probabilityBar(body));
  const prob = el("p", "prob");
  prob.append("P(pneumonia) = ", el("strong", "p", fmt(body.p_pneumonia)),
              ` (calibrated; threshold ${fmt(body.threshold)})`);
  text.append(prob);
  if (body.gradcam_png) {
    card.append(heatmap(entry, body, text));
  }
  card.append(text);
}

// What the DICOM header says the image is (never whom: the server sends no other tag).
function dicomLine(header) {
  const parts = [["modality", "modality"], ["view_position", "view"], ["body_part", "body part"]]
    .filter(([key]) => header[key]).map(([key, name]) => `${name} ${header[key]}`);
  return el("p", "reason dicom", `DICOM: ${parts.join(", ") || "no modality, view or body part"}`);
}

function probabilityBar(body) {
  const bar = el("div", "bar");
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label",
                   `P(pneumonia) ${fmt(body.p_pneumonia)}, threshold ${fmt(body.threshold)}`);
  const fill = el("div", "fill");
  fill.style.width = `${(100 * body.p_pneumonia).toFixed(1)}%`;
  const mark = el("div", "mark");
  mark.style.left = `${(100 * body.threshold).toFixed(1)}%`;
  bar.append(fill, mark);
  if (body.uncertain_band) {
    const band = el("div", "band");
    band.style.left = `${(100 * body.uncertain_band[0]).toFixed(1)}%`;
    band.style.width = `${(100 * (body.uncertain_band[1] - body.uncertain_band[0])).toFixed(1)}%`;
    bar.append(band);
  }
  return bar;
}

function heatmap(entry, body, text) {
  const picture = el("div", "compare");
  const base = el("img", "base");
  base.alt = `${entry.name} as the model read it`;
  base.src = `data:image/png;base64,${body.image_png}`;
  const heat = el("img", "heat");
  heat.alt = `Grad-CAM heatmap over ${entry.name}`;
  heat.src = `data:image/png;base64,${body.gradcam_png}`;
  picture.append(base, heat);
  const slider = el("input", "mix");
  slider.type = "range";
  slider.min = "0";
  slider.max = "100";
  slider.value = "100";
  slider.id = `mix-${entry.index}`;
  slider.addEventListener("input", () => { heat.style.opacity = String(slider.value / 100); });
  const sliderLabel = el("label", "mix-label", "Heatmap: original ◂ ▸ Grad-CAM ");
  sliderLabel.htmlFor = slider.id;
  text.append(sliderLabel, slider);
  return picture;
}

function failCard(entry) {
  entry.card.className = "result failed";
  entry.card.querySelector(".state").textContent = `Could not analyse: ${entry.error}`;
}

// -- the table and the CSV -------------------------------------------------------------------
function sorted() {
  const value = (e) => {
    if (sortKey === "p") return e.p === undefined ? -1 : e.p;
    if (sortKey === "index") return e.index;
    return String(e[sortKey] || "").toLowerCase();
  };
  return [...entries].sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    const order = x < y ? -1 : x > y ? 1 : a.index - b.index;
    return sortUp ? order : -order;
  });
}

function renderTable() {
  $("#batch").hidden = entries.length < 2;
  const body = $("#summary tbody");
  body.textContent = "";
  for (const e of sorted()) {
    const row = el("tr", e.state);
    row.append(el("td", "", String(e.index)));
    const nameCell = el("td");
    const link = el("a", "", e.name);
    link.href = `#result-${e.index}`;
    nameCell.append(link);
    row.append(nameCell);
    const labelText = e.state === "failed" ? `not read: ${e.error}` : e.label || "…";
    row.append(el("td", "", labelText));
    row.append(el("td", "", e.p === undefined ? "" : fmt(e.p, 4)));
    body.append(row);
  }
  for (const th of document.querySelectorAll("#summary th")) {
    const active = th.dataset.key === sortKey;
    th.setAttribute("aria-sort", active ? (sortUp ? "ascending" : "descending") : "none");
  }
}

function csvCell(value) {
  let text = value === undefined || value === null ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`; // OWASP: spreadsheets run these
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadCsv() {
  const header = ["file", "label", "p_pneumonia", "in_scope", "scope_score", "reason",
                  "threshold", "model", "error"];
  const lines = [header.join(",")];
  for (const e of sorted()) {
    lines.push([e.name, e.label, e.p, e.inScope, e.scope, e.reason, e.threshold,
                e.model || modelName, e.error].map(csvCell).join(","));
  }
  const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = "pneumocxr-predictions.csv";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// -- wiring ----------------------------------------------------------------------------------
function setUp() {
  const input = $("#files");
  input.addEventListener("change", () => {
    if (input.files.length) addFiles([...input.files]);
    input.value = ""; // the same file can be chosen again
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) addFiles([...event.dataTransfer.files]);
  });
  for (const th of document.querySelectorAll("#summary th")) {
    th.querySelector("button").addEventListener("click", () => {
      sortUp = sortKey === th.dataset.key ? !sortUp : true;
      sortKey = th.dataset.key;
      renderTable();
    });
  }
  $("#csv").addEventListener("click", downloadCsv);
  loadModel();
}

document.addEventListener("DOMContentLoaded", setUp);
