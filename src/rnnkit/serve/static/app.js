// The page of `rnnkit serve`: plain JavaScript over the JSON API (docs/serve.md), no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], corpora: [], limits: {}, generation: null, job: null };

// -- helpers --------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function setStatus(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Read a text/event-stream response: call onEvent(obj) for each `data: {...}` event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
  }
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function fillRuns(select, task) {
  const runs = state.runs.filter((r) => r.task === task);
  select.replaceChildren(...runs.map((r) => el("option", { value: r.name }, r.name)));
  const panel = select.closest(".panel");
  panel.querySelector(".empty").hidden = runs.length > 0;
  for (const part of panel.querySelectorAll(".form, .buttons")) part.hidden = runs.length === 0;
  return runs;
}

const runInfo = (name) => state.runs.find((r) => r.name === name);

// -- tabs -----------------------------------------------------------------------------------------

function showTab(name) {
  if (!document.querySelector(`.panel#${CSS.escape(name)}`)) name = "generate";
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== name;
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}

// -- generate -------------------------------------------------------------------------------------

function temperature() {
  return Number(Math.pow(10, Number($("gen-temp").value)).toPrecision(2));
}

function sampling() {
  return {
    run: $("gen-run").value,
    temperature: temperature(),
    top_k: numberOrNull("gen-topk"),
    top_p: numberOrNull("gen-topp"),
  };
}

function cliCommand(body, seed) {
  const parts = ["rnnkit sample", body.run];
  if (body.prime) parts.push("--prime " + JSON.stringify(body.prime));
  parts.push("--length " + body.length, "--temperature " + body.temperature);
  if (body.top_k) parts.push("--top-k " + body.top_k);
  if (body.top_p) parts.push("--top-p " + body.top_p);
  if (body.num_samples > 1) parts.push("--num-samples " + body.num_samples);
  parts.push("--seed " + seed);
  return parts.join(" ");
}

async function startGeneration() {
  if ($("gen-pick").checked) return showCandidates();
  const body = {
    ...sampling(),
    prime: $("gen-prime").value,
    length: numberOrNull("gen-length") ?? 400,
    seed: numberOrNull("gen-seed"),
    num_samples: numberOrNull("gen-samples") ?? 1,
  };
  const outputs = $("gen-outputs");
  const boxes = [];
  outputs.replaceChildren();
  for (let i = 0; i < body.num_samples; i++) {
    const box = el("pre", { class: "output", "data-tokens": "0" }, el("span", { class: "prime" }, body.prime));
    const text = document.createTextNode("");
    box.append(text);
    outputs.append(box);
    boxes.push({ box, text, tokens: 0 });
  }
  $("gen-command").textContent = "";
  const controller = new AbortController();
  state.generation = { controller, tokens: 0 };
  $("gen-start").disabled = true;
  $("gen-stop").disabled = false;
  setStatus("gen-status", "sampling…");
  try {
    const response = await fetch("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.error || `HTTP ${response.status}`);
    }
    await readEvents(response, (event) => {
      if (event.token !== undefined) {
        const target = boxes[event.sample ?? 0];
        target.text.appendData(event.token);
        target.tokens += 1;
        target.box.dataset.tokens = String(target.tokens);
        state.generation.tokens += 1;
        $("gen-status").textContent = `${state.generation.tokens} tokens`;
      } else if (event.done) {
        const speed = event.tokens_per_s ? `, ${Math.round(event.tokens_per_s).toLocaleString()} tokens/s` : "";
        setStatus("gen-status", `done: ${event.tokens} tokens${speed}, seed ${event.seed}`);
        $("gen-command").textContent = "same text: " + cliCommand(body, event.seed);
      } else if (event.error) {
        setStatus("gen-status", event.error, true);
      }
    });
  } catch (error) {
    if (error.name === "AbortError") setStatus("gen-status", `stopped after ${state.generation.tokens} tokens`);
    else setStatus("gen-status", error.message, true);
  } finally {
    $("gen-start").disabled = false;
    $("gen-stop").disabled = true;
  }
}

function stopGeneration() {
  // aborting the request closes the connection: the server stops sampling at once
  if (state.generation) state.generation.controller.abort();
}

let pickText = null;

async function showCandidates() {
  if (pickText === null) {
    pickText = $("gen-prime").value;
    $("gen-outputs").replaceChildren(el("pre", { class: "output", id: "gen-picked" }, pickText));
  }
  try {
    const data = await api("/api/next", { ...sampling(), prime: pickText, count: 10 });
    if (!$("gen-pick").checked) return; // the mode was left while the request ran
    const box = $("gen-candidates");
    box.hidden = false;
    box.replaceChildren(
      ...data.candidates.map((c) =>
        el(
          "button",
          { class: "candidate", title: `token id ${c.id}`, onclick: () => pick(c.token) },
          JSON.stringify(c.token).slice(1, -1),
          el("span", { class: "p" }, (100 * c.probability).toFixed(1) + "%"),
        ),
      ),
    );
    setStatus("gen-status", "click a token to append it; the next ten follow");
  } catch (error) {
    setStatus("gen-status", error.message, true);
  }
}

function pick(token) {
  pickText += token;
  $("gen-picked").textContent = pickText;
  showCandidates();
}

function pickModeChanged() {
  const on = $("gen-pick").checked;
  pickText = null;
  $("gen-candidates").hidden = true;
  $("gen-start").textContent = on ? "Show next tokens" : "Generate";
  if (on) showCandidates();
}

// -- classify -------------------------------------------------------------------------------------

function drawBars(container, probabilities) {
  const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  container.replaceChildren(
    ...ranked.map(([label, p], i) =>
      el(
        "div",
        { class: "bar" + (i === 0 ? " best" : ""), "data-label": label },
        el("span", {}, label),
        el("div", { class: "track" }, el("div", { class: "fill", style: `width:${(100 * p).toFixed(1)}%` })),
        el("span", { class: "value" }, (100 * p).toFixed(1) + "%"),
      ),
    ),
  );
}

async function classify() {
  try {
    const data = await api("/api/classify", { run: $("cls-run").value, text: $("cls-text").value });
    const prediction = data.predictions[0];
    drawBars($("cls-bars"), prediction.probabilities);
    setStatus("cls-status", `label: ${prediction.label}`);
  } catch (error) {
    setStatus("cls-status", error.message, true);
  }
}

function corporaChanged() {
  const info = runInfo($("cls-run").value);
  const set = info && state.corpora.find((c) => c.name === info.corpora);
  $("cls-corpora").hidden = !set;
  if (!set) return;
  $("cls-corpora-name").textContent = set.name;
  const m = set.report;
  $("cls-corpora-report").textContent = m
    ? `From the run's report: classifier accuracy ${(100 * m.classifier_accuracy).toFixed(1)}%; passages assigned ` +
      `to their own corpus: per-corpus generators ${(100 * m.per_corpus_generators_own_share).toFixed(1)}%, ` +
      `conditioned generator ${(100 * m.conditional_generator_own_share).toFixed(1)}%.`
    : "The run has no report yet.";
}

async function corporaPassages() {
  const info = runInfo($("cls-run").value);
  const table = $("cls-corpora-table");
  setStatus("cls-status", "generating…");
  try {
    const data = await api("/api/corpora", {
      corpora: info.corpora,
      per_corpus: numberOrNull("cls-corpora-n") ?? 2,
      seed: Math.floor(Math.random() * 1e9),
    });
    const head = el("tr", {}, el("th", {}, "generated by"), el("th", {}, "passage (what the classifier read)"),
      el("th", {}, "assigned to"), el("th", {}, "p"));
    table.replaceChildren(
      head,
      ...data.passages.map((p) =>
        el(
          "tr",
          {},
          el("td", {}, p.corpus),
          el("td", {}, p.text),
          el("td", { class: p.assigned === p.corpus ? "hit" : "miss" }, p.assigned),
          el("td", {}, (100 * p.probabilities[p.assigned]).toFixed(0) + "%"),
        ),
      ),
    );
    setStatus("cls-status", `${(100 * data.own_corpus_share).toFixed(0)}% of these passages assigned to their own corpus`);
  } catch (error) {
    setStatus("cls-status", error.message, true);
  }
}

// -- tag ------------------------------------------------------------------------------------------

function typeColor(type) {
  let h = 0;
  for (const c of type) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h}, 70%, 82%)`;
}

async function tag() {
  const text = $("tag-text").value;
  try {
    const data = await api("/api/tag", { run: $("tag-run").value, text });
    $("tag-legend").replaceChildren(...data.types.map((t) => el("mark", { style: `background:${typeColor(t)}` }, t)));
    const parts = [];
    let cursor = 0;
    let count = 0;
    for (const sentence of data.sentences) {
      for (const e of sentence.entities) {
        parts.push(text.slice(cursor, e.char_start));
        parts.push(el("mark", { class: "ent", "data-type": e.type, style: `background:${typeColor(e.type)}` },
          text.slice(e.char_start, e.char_end), el("sup", {}, e.type)));
        cursor = e.char_end;
        count += 1;
      }
    }
    parts.push(text.slice(cursor));
    $("tag-output").replaceChildren(...parts);
    setStatus("tag-status", `${count} entities`);
  } catch (error) {
    setStatus("tag-status", error.message, true);
  }
}

// -- seq2seq --------------------------------------------------------------------------------------

function s2sChanged() {
  const info = runInfo($("s2s-run").value);
  if (!info) return;
  const example = info.examples && info.examples[0];
  if (example) {
    $("s2s-input").value = example.input;
    $("s2s-example").textContent = `a test example of ${info.generator}; its target: ${example.target}`;
  }
}

async function seq2seq() {
  try {
    const data = await api("/api/seq2seq", { run: $("s2s-run").value, input: $("s2s-input").value });
    $("s2s-output").textContent = data.output;
    const map = $("s2s-heatmap");
    if (!data.attention) {
      map.replaceChildren(el("p", { class: "status" }, "this model has no attention"));
    } else {
      const shown = (t) => (t === "\n" ? "⏎" : t === " " ? "␣" : t);
      const rows = [el("tr", {}, el("th", {}), ...data.input_tokens.map((t) => el("th", {}, shown(t))))];
      data.attention.forEach((weights, i) => {
        rows.push(el("tr", {}, el("th", {}, shown(data.output_tokens[i] ?? "")),
          ...weights.map((w) => el("td", { title: w.toFixed(3), style: `background:rgba(47,111,223,${w.toFixed(3)})` }))));
      });
      map.replaceChildren(el("table", {}, ...rows));
    }
    setStatus("s2s-status", `${data.finished ? "finished" : "cut at the length limit"}, log p = ${data.log_prob.toFixed(3)}`);
  } catch (error) {
    setStatus("s2s-status", error.message, true);
  }
}

// -- train live -----------------------------------------------------------------------------------

const curve = { train: [], valid: [] };

function drawCurve() {
  const svg = $("train-curve");
  const W = 600, H = 220, left = 40, bottom = 20, top = 10, right = 10;
  const all = [...curve.train, ...curve.valid];
  svg.dataset.points = String(curve.train.length);
  svg.dataset.valid = String(curve.valid.length);
  if (all.length === 0) return svg.replaceChildren();
  const maxStep = Math.max(...all.map((p) => p[0]), 1);
  const lo = Math.min(...all.map((p) => p[1]));
  const hi = Math.max(...all.map((p) => p[1]));
  const span = hi - lo || 1;
  const x = (s) => left + ((W - left - right) * s) / maxStep;
  const y = (v) => top + ((H - top - bottom) * (hi - v)) / span;
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return n;
  };
  const label = (text, attrs) => {
    const t = make("text", attrs);
    t.textContent = text;
    return t;
  };
  const line = (points, cls) => make("polyline", { class: cls, points: points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ") });
  svg.replaceChildren(
    make("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }),
    make("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }),
    label(hi.toFixed(2), { x: 4, y: top + 8 }),
    label(lo.toFixed(2), { x: 4, y: H - bottom }),
    label(`step ${maxStep}`, { x: W - right - 50, y: H - 4 }),
    line(curve.train, "train"),
    line(curve.valid, "valid"),
    ...curve.valid.map((p) => make("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5 })),
  );
}

function trainButtons(jobState) {
  const live = jobState === "starting" || jobState === "running" || jobState === "paused";
  $("train-start").disabled = live;
  $("train-pause").disabled = !live;
  $("train-stop").disabled = !live;
  $("train-save").disabled = !state.job;
  $("train-pause").textContent = jobState === "paused" ? "Resume" : "Pause";
}

function trainOptions() {
  return {
    cell: $("train-cell").value,
    hidden_size: numberOrNull("train-hidden") ?? 128,
    num_layers: numberOrNull("train-layers") ?? 1,
    time_budget: numberOrNull("train-budget") ?? 60,
    eval_every: numberOrNull("train-eval") ?? 100,
  };
}

async function startTraining() {
  const file = $("train-file").files[0];
  curve.train = [];
  curve.valid = [];
  drawCurve();
  $("train-sample").textContent = "";
  $("train-saved").textContent = "";
  let response;
  try {
    if (file && !$("train-text").value.trim()) {
      // an upload goes as the file's bytes (the server checks it is UTF-8 text), options in the query
      const query = new URLSearchParams(Object.entries(trainOptions()).map(([k, v]) => [k, String(v)]));
      response = await fetch("/api/train?" + query, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file });
    } else {
      response = await fetch("/api/train", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: $("train-text").value, ...trainOptions() }),
      });
    }
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    state.job = data.id;
    trainButtons(data.state);
    setStatus("train-status", "starting the worker…");
    followTraining(data.id);
  } catch (error) {
    setStatus("train-status", error.message, true);
  }
}

async function followTraining(id) {
  const response = await fetch(`/api/train/${id}`, { headers: { Accept: "text/event-stream" } });
  let info = "";
  await readEvents(response, (e) => {
    if (e.event === "start") info = `${e.parameters.toLocaleString()} parameters, ${e.vocab_size} characters, ` +
      `${e.train_chars.toLocaleString()} training characters`;
    else if (e.event === "train") curve.train.push([e.step, e.loss]);
    else if (e.event === "valid") {
      curve.valid.push([e.step, e.loss]);
      $("train-sample").textContent = e.sample;
    } else if (e.event === "state") trainButtons(e.state);
    else if (e.event === "error") setStatus("train-status", e.error, true);
    if (e.event === "train" || e.event === "valid" || e.event === "start" || e.event === "state" || e.done) {
      drawCurve();
      const last = curve.train[curve.train.length - 1];
      const where = last ? `step ${last[0]}, training loss ${last[1].toFixed(3)}` : "";
      const st = e.done ? e.state : e.state || "";
      if (e.event !== "error") setStatus("train-status", [st, where, info].filter(Boolean).join(" · "));
    }
    if (e.done) trainButtons(e.state);
  });
}

async function trainAction(action) {
  try {
    const data = await api(`/api/train/${state.job}/${action}`, {});
    if (action === "save") {
      $("train-saved").replaceChildren(`saved as ${data.saved} (rnnkit sample ${data.saved}) `,
        el("a", { href: data.download }, "download"));
    }
  } catch (error) {
    setStatus("train-status", error.message, true);
  }
}

// -- start ----------------------------------------------------------------------------------------

async function health() {
  try {
    const h = await api("/healthz");
    $("health").textContent = `${h.runs} runs · ${h.generations.active} generating · ${h.trainings} training`;
  } catch {
    $("health").textContent = "server unreachable";
  }
}

async function init() {
  const data = await api("/api/runs");
  Object.assign(state, { runs: data.runs, corpora: data.corpora, limits: data.limits });
  fillRuns($("gen-run"), "lm");
  fillRuns($("cls-run"), "classify");
  fillRuns($("tag-run"), "tag");
  fillRuns($("s2s-run"), "seq2seq");
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  $("gen-temp").addEventListener("input", () => ($("gen-temp-value").textContent = temperature().toFixed(2)));
  $("gen-temp-value").textContent = temperature().toFixed(2);
  $("gen-start").addEventListener("click", startGeneration);
  $("gen-stop").addEventListener("click", stopGeneration);
  $("gen-pick").addEventListener("change", pickModeChanged);
  $("cls-go").addEventListener("click", classify);
  $("cls-run").addEventListener("change", corporaChanged);
  $("cls-corpora-go").addEventListener("click", corporaPassages);
  $("tag-go").addEventListener("click", tag);
  $("s2s-go").addEventListener("click", seq2seq);
  $("s2s-run").addEventListener("change", s2sChanged);
  $("train-start").addEventListener("click", startTraining);
  $("train-pause").addEventListener("click", () => trainAction($("train-pause").textContent === "Resume" ? "resume" : "pause"));
  $("train-stop").addEventListener("click", () => trainAction("stop"));
  $("train-save").addEventListener("click", () => trainAction("save"));
  for (const [id, limit] of [["gen-length", "max_length"], ["gen-samples", "max_samples"], ["train-budget", "max_train_seconds"], ["train-hidden", "max_train_hidden"], ["train-layers", "max_train_layers"]]) {
    $(id).max = state.limits[limit];
  }
  corporaChanged();
  s2sChanged();
  trainButtons(null);
  showTab((location.hash || "#generate").slice(1));
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  health();
  setInterval(health, 3000);
  document.body.dataset.ready = "1";
}

init().catch((error) => {
  document.querySelector("main").prepend(el("p", { class: "error" }, "could not load the runs: " + error.message));
});
