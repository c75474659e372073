// The dashboard: one page, hash routes, the REST API at /api/v1 with the user's key.
// Everything shown comes from the API and is written with textContent (never parsed as HTML), so a
// dataset's column names or labels cannot inject markup. Charts: uPlot (vendored).
"use strict";

(() => {
  const API = "/api/v1";
  const KEY = "automl.apiKey";
  const POLL_MS = 2000;
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#7f7f7f", "#bcbd22"];
  const view = document.getElementById("view");
  let timer = null;          // the running view's poll
  let charts = [];           // uPlot instances of the running view
  let generation = 0;        // bumped on each navigation; stale polls stop

  // -- small helpers -------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") el.textContent = String(value);
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "class") el.className = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const fmt = (v, digits = 4) => (typeof v === "number" ? String(Number(v.toPrecision(digits)))
                                                        : v === null || v === undefined ? "" : String(v));
  // replaceChildren() would write a null as the text "null".
  const put = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const link = (href, text) => h("a", { href, text });

  function duration(seconds) {
    const s = Math.round(seconds);
    const hours = Math.floor(s / 3600), minutes = Math.floor((s % 3600) / 60), secs = s % 60;
    if (hours) return `${hours}h${String(minutes).padStart(2, "0")}m`;
    return minutes ? `${minutes}m${String(secs).padStart(2, "0")}s` : `${secs}s`;
  }

  // The same reading of a job as `automl train --wait` (automl/client/progress.py).
  function timeLeft(job) {
    if (FINISHED.includes(job.state)) return "done";
    let left = job.eta_s;
    if (job.time_budget_s !== null && job.time_budget_s !== undefined && job.elapsed_s !== null) {
      const remaining = Math.max(0, job.time_budget_s - job.elapsed_s);
      left = left === null || left === undefined ? remaining : Math.min(left, remaining);
    }
    return left === null || left === undefined ? "? left" : `${duration(left)} left`;
  }

  function flash(message) {
    const box = document.getElementById("flash");
    box.hidden = !message;
    box.textContent = message || "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      const details = body && body.errors ? " (" + Object.entries(body.errors)
        .map(([where, what]) => `${where}: ${JSON.stringify(what)}`).join("; ") + ")" : "";
      super(`${status} ${(body && body.message) || "request failed"}${details}`);
      this.status = status;
      this.body = body;
    }
  }

  function key() { return sessionStorage.getItem(KEY) || localStorage.getItem(KEY); }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${key()}`, ...(options.headers || {}) };
    let body = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const response = await fetch(API + path, { method: options.method || "GET", headers, body });
    if (response.status === 401) {
      askForKey("The service did not accept this key; paste another.");
      throw new ApiError(401, { message: "not signed in" });
    }
    if (!response.ok) {
      let detail = null;
      try { detail = await response.json(); } catch (_) { detail = { message: response.statusText }; }
      throw new ApiError(response.status, detail);
    }
    return options.raw ? response : response.json();
  }

  function table(columns, rows, options = {}) {
    // columns: [{title, value(row) -> text|Node, sort(row) -> comparable, class}]
    let sortBy = options.sortBy ?? null, descending = options.descending ?? false;
    const wrapper = h("div", { class: "table-wrap" });
    function render() {
      const sorted = rows.slice();
      if (sortBy !== null && columns[sortBy].sort) {
        const key = columns[sortBy].sort;
        sorted.sort((a, b) => {
          const x = key(a), y = key(b);
          if (x === y) return 0;
          if (x === null || x === undefined || x === "") return 1;   // blanks last either way
          if (y === null || y === undefined || y === "") return -1;
          return (x < y ? -1 : 1) * (descending ? -1 : 1);
        });
      }
      const head = h("tr", {}, columns.map((column, i) => h("th", {
        class: [column.class, column.sort ? "sortable" : "", sortBy === i ? (descending ? "desc" : "asc") : ""]
          .filter(Boolean).join(" "),
        title: column.sort ? "Sort" : null,
        onclick: column.sort ? () => { descending = sortBy === i ? !descending : false; sortBy = i; render(); } : null,
      }, column.title)));
      const body = sorted.map((row) => h("tr", options.rowAttrs ? options.rowAttrs(row) : {},
        columns.map((column) => h("td", { class: column.class }, column.value(row)))));
      wrapper.replaceChildren(h("table", options.id ? { id: options.id } : {}, h("thead", {}, head),
                                h("tbody", {}, body.length ? body : h("tr", {}, h("td", {
                                  colspan: columns.length, class: "empty", text: options.empty || "Nothing yet." })))));
    }
    render();
    return wrapper;
  }

  function bars(counts, total) {
    const entries = Object.entries(counts || {});
    const most = Math.max(1, ...entries.map(([, n]) => n));
    return barRows(entries.map(([label, n]) => [label, n, `${n}${total ? ` (${((100 * n) / total).toFixed(1)}%)` : ""}`]),
                   most);
  }

  // rows: [label, value, text shown]; a bar's length is value / most (none below 0).
  function barRows(rows, most, id) {
    return h("div", { class: "bars", id: id || null }, rows.map(([label, n, text]) => {
      const bar = h("span", { class: "bar" });
      bar.style.width = `${Math.max(0, (100 * n) / most)}%`;  // CSSOM, allowed by the page's CSP
      return h("div", { class: "bar-row", title: `${label}: ${text}` },
               h("span", { class: "bar-label", text: label }), h("span", { class: "bar-track" }, bar),
               h("span", { class: "bar-count", text }));
    }));
  }

  function progress(done, total) {
    const bar = h("span", { class: "progress-fill" });
    bar.style.width = `${total ? Math.min(100, (100 * done) / total) : 0}%`;
    return h("span", { class: "progress", title: `${done} of ${total}` }, bar);
  }

  // -- learning curves ----------------------------------------------------------------------

  function metricFamilies(histories) {
    const names = new Set();
    for (const epochs of histories) {
      for (const row of epochs) {
        for (const name of Object.keys(row)) {
          if (name === "epoch" || name === "execution") continue;
          names.add(name.startsWith("val_") ? name.slice(4) : name);
        }
      }
    }
    const ordered = [...names].sort();
    return ordered.includes("loss") ? ["loss", ...ordered.filter((n) => n !== "loss")] : ordered;
  }

  // curves: [{label, color, epochs}] -> one uPlot chart of `metric`: train solid, validation dashed.
  function curvesChart(container, curves, metric, log) {
    const first = (epochs) => epochs.filter((row) => (row.execution || 0) === 0);
    const longest = Math.max(0, ...curves.map((c) => first(c.epochs).length));
    const xs = Array.from({ length: longest }, (_, i) => i + 1);
    const data = [xs];
    const series = [{ label: "epoch" }];
    let points = 0;
    for (const curve of curves) {
      for (const [prefix, dash, split] of [["", null, "train"], ["val_", [6, 4], "validation"]]) {
        const rows = first(curve.epochs);
        if (!rows.some((row) => typeof row[prefix + metric] === "number")) continue;
        const ys = xs.map((_, i) => (rows[i] && typeof rows[i][prefix + metric] === "number"
                                     ? rows[i][prefix + metric] : null));
        points += ys.filter((y) => y !== null).length;
        data.push(ys);
        series.push({ label: `${curve.label} ${split}`, stroke: curve.color, width: 1.6,
                      dash: dash || undefined, points: { show: longest <= 30, size: 4 } });
      }
    }
    container.dataset.series = String(series.length - 1);
    container.dataset.points = String(points);
    container.dataset.metric = metric;
    if (series.length === 1) {
      container.replaceChildren(h("p", { class: "empty", text: "No epochs recorded yet." }));
      return null;
    }
    container.replaceChildren();
    const width = Math.max(320, container.clientWidth || 720);
    const chart = new uPlot({
      width, height: 300, series, legend: { show: false }, cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] }, { label: metric, size: 60 }],
    }, data, container);
    charts.push(chart);
    return chart;
  }

  function curvesPanel(title, loadCurves) {
    // A chart with a metric picker; refresh() re-reads the curves (used by the live poll).
    const picker = h("select", { "aria-label": "metric" });
    const logScale = h("input", { type: "checkbox", "aria-label": "log scale" });
    const area = h("div", { class: "chart", "data-updates": "0" });
    const legend = h("div", { class: "legend" });
    let metric = null, curves = [], signature = "";
    function draw() {
      const families = metricFamilies(curves.map((c) => c.epochs));
      if (!metric || !families.includes(metric)) metric = families[0] || "loss";
      picker.replaceChildren(...families.map((f) => h("option", { value: f, selected: f === metric, text: f })));
      charts = charts.filter((c) => c.root.parentNode !== area || (c.destroy(), false));
      // A log axis needs positive values: offered for losses, which one bad trial can dwarf.
      const positive = curves.every((c) => c.epochs.every((row) => ["", "val_"].every((p) =>
        typeof row[p + metric] !== "number" || row[p + metric] > 0)));
      logScale.disabled = !positive;
      curvesChart(area, curves, metric, positive && logScale.checked);
      legend.replaceChildren(...curves.map((c) => h("span", { class: "legend-item" },
        h("span", { class: "swatch", "data-color": c.color }), c.label)),
        curves.length ? h("span", { class: "legend-note", text: "solid: training, dashed: validation" }) : "");
      for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
    }
    picker.addEventListener("change", () => { metric = picker.value; draw(); });
    logScale.addEventListener("change", draw);
    async function refresh() {
      curves = await loadCurves();
      const next = JSON.stringify(curves.map((c) => [c.label, c.epochs.length, c.epochs[c.epochs.length - 1]]));
      if (next === signature) return;
      signature = next;
      area.dataset.updates = String(Number(area.dataset.updates) + 1);
      draw();
    }
    const panel = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: title }),
                    h("span", { class: "controls" }, h("label", {}, logScale, " log scale"), picker)), area, legend);
    return { panel, refresh };
  }

  // -- views --------------------------------------------------------------------------------

  async function datasetsView() {
    const datasets = await api("/datasets?limit=100");
    const file = h("input", { type: "file", name: "file", accept: ".csv,.parquet,.zip", required: true });
    const form = h("form", { class: "inline", id: "upload" }, file, h("button", { type: "submit", text: "Upload" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData();
      data.append("file", file.files[0]);
      try {
        flash("Uploading…");
        const dataset = await api("/datasets", { method: "POST", body: data });
        flash("");
        location.hash = `#/datasets/${dataset.id}`;
      } catch (error) { flash(error.message); }
    });
    return [
      h("section", { class: "card" }, h("h1", { text: "Datasets" }),
        h("p", { class: "hint", text: "CSV, Parquet, or a zip of images (a folder per class, or labels.csv)." }), form),
      h("section", { class: "card" }, table([
        { title: "Name", value: (d) => link(`#/datasets/${d.id}`, d.name), sort: (d) => d.name },
        { title: "Kind", value: (d) => d.kind, sort: (d) => d.kind },
        { title: "Rows", value: (d) => fmt(d.n_rows), sort: (d) => d.n_rows, class: "num" },
        { title: "Columns", value: (d) => fmt(d.n_columns), sort: (d) => d.n_columns, class: "num" },
        { title: "Created", value: (d) => when(d.created_at), sort: (d) => d.created_at },
      ], datasets, { id: "datasets", empty: "No datasets yet: upload one above." })),
    ];
  }

  async function datasetView(id) {
    const d = await api(`/datasets/${encodeURIComponent(id)}`);
    const stats = (c) => (c.stats && Object.keys(c.stats).length
      ? Object.entries(c.stats).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") : "");
    const counted = d.n_rows;
    const schema = table([
      { title: "Column", value: (c) => c.name, sort: (c) => c.name },
      { title: "Type", value: (c) => c.type, sort: (c) => c.type },
      { title: "Missing", value: (c) => fmt(c.missing), sort: (c) => c.missing, class: "num" },
      { title: "Unique", value: (c) => fmt(c.unique), sort: (c) => c.unique, class: "num" },
      { title: "Statistics", value: stats },
      { title: "Most frequent values (class balance)",
        value: (c) => (c.top_values && Object.keys(c.top_values).length ? bars(c.top_values, counted - c.missing) : "") },
    ], d.columns || [], { id: "schema" });
    const parts = [
      h("section", { class: "card" }, h("h1", { text: d.name }),
        h("p", { class: "meta" }, `${d.kind} · ${fmt(d.n_rows)} rows · ${fmt(d.n_columns)} columns · `,
          `${fmt(Math.round((d.size_bytes || 0) / 1024))} KiB · ${d.source_format || ""} · ${when(d.created_at)}`)),
    ];
    if (d.images) {
      parts.push(h("section", { class: "card" }, h("h2", { text: "Images per class" }),
        bars(d.images.images_per_class || {}, d.images.n_images),
        h("p", { class: "meta", text: `${d.images.n_images} images, ${d.images.n_unreadable} skipped` })));
    }
    parts.push(h("section", { class: "card" }, h("h2", { text: d.kind === "image" ? "Labels" : "Schema" }), schema));
    parts.push(newJobForm(d));
    return parts;
  }

  function newJobForm(dataset) {
    const columns = (dataset.columns || []).map((c) => c.name);
    const field = (label, input) => h("label", {}, h("span", { text: label }), input);
    const target = h("select", { name: "target" }, columns.map((c, i) => h("option", {
      value: c, text: c, selected: i === columns.length - 1 })));
    const task = h("select", { name: "task" }, ["auto", "classification", "regression", "multilabel"]
      .map((t) => h("option", { value: t, text: t })));
    const tuner = h("select", { name: "tuner" }, ["bayesian", "random", "hyperband", "grid"]
      .map((t) => h("option", { value: t, text: t })));
    const trials = h("input", { type: "number", name: "max_trials", min: 1, value: 10 });
    const epochs = h("input", { type: "number", name: "max_epochs", min: 1, value: 20 });
    const budget = h("input", { type: "number", name: "time_budget_s", min: 1, placeholder: "none" });
    const form = h("form", { class: "grid-form", id: "new-job" },
      field("Target", target), field("Task", task), field("Tuner", tuner), field("Max trials", trials),
      field("Max epochs", epochs), field("Time budget (s)", budget), h("button", { type: "submit", text: "Start search" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { dataset_id: dataset.id, task: task.value, tuner: tuner.value,
                     max_trials: Number(trials.value), max_epochs: Number(epochs.value) };
      if (dataset.kind !== "image" || columns.length) body.target = target.value;
      if (budget.value) body.time_budget_s = Number(budget.value);
      try {
        const job = await api("/jobs", { method: "POST", json: body,
                                         headers: { "Idempotency-Key": crypto.randomUUID() } });
        location.hash = `#/jobs/${job.id}`;
      } catch (error) { flash(error.message); }
    });
    return h("section", { class: "card" }, h("h2", { text: "Start a search" }), form);
  }

  async function jobsView(gen) {
    const box = h("section", { class: "card" }, h("h1", { text: "Jobs" }));
    const holder = h("div");
    box.append(holder);
    async function refresh() {
      const jobs = await api("/jobs?limit=100");
      holder.replaceChildren(table([
        { title: "Job", value: (j) => link(`#/jobs/${j.id}`, j.id), sort: (j) => j.id },
        { title: "State", value: (j) => h("span", { class: `state ${j.state}`, text: j.state }), sort: (j) => j.state },
        { title: "Trials", value: (j) => h("span", {}, progress(j.trials_done, j.max_trials),
                                           ` ${j.trials_done}/${j.max_trials}`), sort: (j) => j.trials_done },
        { title: "Objective", value: (j) => j.objective, sort: (j) => j.objective },
        { title: "Best", value: (j) => fmt(j.best_score), sort: (j) => j.best_score, class: "num" },
        { title: "Model", value: (j) => (j.model_id ? link(`#/models/${j.model_id}`, j.model_id) : "") },
        { title: "Created", value: (j) => when(j.created_at), sort: (j) => j.created_at },
      ], jobs, { id: "jobs", empty: "No jobs yet: start a search from a dataset's page." }));
      return jobs.some((j) => !FINISHED.includes(j.state));
    }
    poll(gen, refresh);
    return [box];
  }

  async function jobView(id, gen) {
    const path = `/jobs/${encodeURIComponent(id)}`;
    const head = h("section", { class: "card" });
    const board = h("section", { class: "card" }, h("h2", { text: "Leaderboard" }));
    const boardHolder = h("div");
    board.append(boardHolder);
    const histories = new Map();  // trial_id -> {epochs_done, state, epochs}
    let trials = [];
    const curves = curvesPanel("Learning curves: every trial", async () => trials
      .filter((t) => histories.has(t.trial_id))
      .sort((a, b) => a.number - b.number)
      .map((t) => ({ label: `trial ${t.number + 1}`, color: COLORS[t.number % COLORS.length],
                     epochs: histories.get(t.trial_id).epochs })));
    let sortBy = 3, descending = false;

    async function refresh() {
      const [job, leaderboard] = await Promise.all([api(path), api(`${path}/trials`)]);
      trials = leaderboard.trials;
      // Only the trials that moved since the last poll are fetched again.
      await Promise.all(trials.map(async (t) => {
        const known = histories.get(t.trial_id);
        if (known && known.epochs_done === t.epochs_done && known.state === t.state) return;
        const history = await api(`${path}/trials/${encodeURIComponent(t.trial_id)}/history`);
        histories.set(t.trial_id, { epochs_done: t.epochs_done, state: t.state, epochs: history.epochs });
      }));
      renderHead(job);
      renderBoard(leaderboard);
      await curves.refresh();
      await learned.refresh(leaderboard);
      return !FINISHED.includes(job.state);
    }

    function renderHead(job) {
      const running = (job.running_trials || []).slice().sort((a, b) => a.number - b.number)
        .map((t) => `trial ${t.number + 1}: epoch ${t.epoch}${job.max_epochs ? "/" + job.max_epochs : ""}`);
      const cancel = FINISHED.includes(job.state) || job.cancel_requested ? null
        : h("button", { type: "button", class: "secondary", text: "Cancel", onclick: async () => {
          try { await api(`${path}/cancel`, { method: "POST" }); } catch (error) { flash(error.message); }
        } });
      put(head,
        h("div", { class: "card-head" }, h("h1", { text: `Job ${job.id}` }), cancel),
        h("p", { class: "meta" }, `${job.task} · ${job.tuner} search · objective ${job.objective} (${job.objective_direction})`,
          " · dataset ", link(`#/datasets/${job.dataset_id}`, job.dataset_id)),
        h("div", { class: "status" },
          h("span", { id: "job-state", class: `state ${job.state}`, text: job.state }),
          h("span", {}, progress(job.trials_done, job.max_trials), ` trials ${job.trials_done}/${job.max_trials}`),
          h("span", { id: "job-epochs", text: running.join(", ") || "" }),
          h("span", { id: "job-best", text: job.best_score === null || job.best_score === undefined ? "no score yet"
                                               : `best ${job.objective} ${fmt(job.best_score)}` }),
          h("span", { id: "job-left", text: timeLeft(job) })),
        job.stop_reason ? h("p", { class: "meta", text: `stopped: ${job.stop_reason}` }) : null,
        job.error ? h("p", { class: "error", text: job.error }) : null,
        job.model_id ? h("p", {}, "Model: ", link(`#/models/${job.model_id}`, job.model_id)) : null,
        job.best_model_id && job.best_model_id !== job.model_id
          ? h("p", { id: "job-best-model" }, "Best model so far (serves while the search runs): ",
              link(`#/models/${job.best_model_id}`, job.best_model_id)) : null);
    }

    function renderBoard(leaderboard) {
      const names = [];
      for (const t of leaderboard.trials) {
        for (const name of Object.keys(t.hyperparameters || {})) if (!names.includes(name)) names.push(name);
      }
      const hp = (t, name) => (t.hyperparameters || {})[name];
      const columns = [
        { title: "#", value: (t) => h("span", {}, h("span", { class: "swatch" }), String(t.number + 1)),
          sort: (t) => t.number },
        { title: "State", value: (t) => h("span", { class: `state ${t.state}`, text: t.state }), sort: (t) => t.state },
        { title: "Epochs", value: (t) => fmt(t.epochs_done), sort: (t) => t.epochs_done, class: "num" },
        { title: `Score (${leaderboard.objective})`, value: (t) => fmt(t.score), class: "num",
          sort: (t) => (t.score === null ? null : leaderboard.direction === "max" ? -t.score : t.score) },
        { title: "Best epoch", value: (t) => fmt(t.best_epoch), sort: (t) => t.best_epoch, class: "num" },
        ...names.map((name) => ({ title: name, value: (t) => fmt(hp(t, name)), sort: (t) => hp(t, name) })),
      ];
      const rendered = table(columns, leaderboard.trials, {
        id: "leaderboard", sortBy, descending, empty: "No trial has started yet.",
        rowAttrs: (t) => ({ "data-trial": t.trial_id, title: t.message || null }),
      });
      // Keep the user's sort across live refreshes.
      rendered.addEventListener("click", (event) => {
        const th = event.target.closest("th");
        if (!th) return;
        const index = [...th.parentNode.children].indexOf(th);
        descending = sortBy === index ? !descending : false;
        sortBy = index;
      }, true);
      for (const row of rendered.querySelectorAll("tbody tr[data-trial]")) {
        const trial = leaderboard.trials.find((t) => t.trial_id === row.dataset.trial);
        const swatch = row.querySelector(".swatch");
        if (trial && swatch) swatch.style.background = COLORS[trial.number % COLORS.length];
      }
      boardHolder.replaceChildren(rendered);
    }

    const learned = learnedPanel(path);
    poll(gen, refresh);
    return [head, curves.panel, board, learned.panel];
  }

  // What the search learned: every scored trial in parallel coordinates (one axis per hyperparameter
  // that varied, then the score; darker is better), and which hyperparameters explained the score.
  const HP_IMPORTANCE_MIN_TRIALS = 4;  // automl/insight/hyperparameters.py MIN_TRIALS

  function learnedPanel(path) {
    const canvas = h("canvas", { id: "parallel", width: "1100", height: "320", "data-trials": "0", "data-axes": "0" });
    const importance = h("div", { id: "hp-importance-holder" });
    const panel = h("section", { class: "card" }, h("h2", { text: "What the search learned" }),
      h("p", { class: "hint", text: "Each line is a trial across its hyperparameters and its score (darker: better). "
                                    + "Below: each hyperparameter's share of the score's variance." }),
      h("div", { class: "table-wrap" }, canvas), importance);
    let signature = "";
    async function refresh(leaderboard) {
      const scored = leaderboard.trials.filter((t) => typeof t.score === "number");
      const next = JSON.stringify(scored.map((t) => [t.trial_id, t.score]));
      if (next === signature) return;
      signature = next;
      drawParallel(canvas, scored, leaderboard.direction);
      const completed = scored.filter((t) => t.state === "completed").length;
      if (completed < HP_IMPORTANCE_MIN_TRIALS) {  // the API would answer 409 until then
        importance.replaceChildren(h("p", { class: "hint", id: "hp-importance-wait",
          text: `Which hyperparameters matter is estimated from ${HP_IMPORTANCE_MIN_TRIALS} completed trials on.` }));
        return;
      }
      const found = await api(`${path}/importance`);
      const rows = found.hyperparameters.map((x) => [x.name, x.importance, x.importance.toFixed(3)]);
      importance.replaceChildren(h("p", { class: "meta", text: `From ${found.trials} completed trials (${found.method}).` }),
                                 barRows(rows, 1, "hp-importance"));
    }
    return { panel, refresh };
  }

  function drawParallel(canvas, trials, direction) {
    const names = [];
    for (const t of trials) for (const name of Object.keys(t.hyperparameters || {})) if (!names.includes(name)) names.push(name);
    const varied = names.filter((name) => new Set(trials.map((t) => JSON.stringify((t.hyperparameters || {})[name]))).size > 1);
    const axes = [...varied.map((name) => ({ name, value: (t) => (t.hyperparameters || {})[name] })),
                  { name: "score", value: (t) => t.score }];
    const ctx = canvas.getContext("2d");
    const width = Math.max(600, 140 * axes.length);
    canvas.width = width;
    const height = canvas.height, top = 30, bottom = height - 40;
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    const x = (i) => 60 + (i * (width - 120)) / Math.max(1, axes.length - 1);
    // Each axis maps its values to [0, 1]: numbers linearly (log when they span 100x and more), others as
    // evenly spaced choices; a trial without the hyperparameter sits below the axis.
    const scales = axes.map((axis) => {
      const values = trials.map(axis.value).filter((v) => v !== undefined && v !== null);
      if (values.every((v) => typeof v === "number")) {
        const lo = Math.min(...values), hi = Math.max(...values);
        const log = lo > 0 && hi / lo >= 100;
        const f = (v) => (log ? Math.log10(v) : v);
        return { at: (v) => (hi === lo ? 0.5 : (f(v) - f(lo)) / (f(hi) - f(lo))), labels: [[0, fmt(lo)], [1, fmt(hi)]] };
      }
      const choices = [...new Set(values.map(String))].sort();
      const at = (v) => (choices.length === 1 ? 0.5 : choices.indexOf(String(v)) / (choices.length - 1));
      return { at, labels: choices.map((c) => [at(c), c]) };
    });
    const y = (share) => bottom - share * (bottom - top);
    const ranked = trials.slice().sort((a, b) => (direction === "max" ? b.score - a.score : a.score - b.score));
    ranked.slice().reverse().forEach((t) => {  // the best drawn last, on top
      const rank = ranked.indexOf(t) / Math.max(1, ranked.length - 1);
      ctx.strokeStyle = `rgba(31, 95, 191, ${(0.95 - 0.75 * rank).toFixed(2)})`;
      ctx.lineWidth = rank === 0 ? 2.5 : 1.2;
      ctx.beginPath();
      axes.forEach((axis, i) => {
        const v = axis.value(t);
        const py = v === undefined || v === null ? bottom + 14 : y(scales[i].at(v));
        if (i === 0) ctx.moveTo(x(i), py); else ctx.lineTo(x(i), py);
      });
      ctx.stroke();
    });
    ctx.fillStyle = "#333";
    axes.forEach((axis, i) => {
      ctx.strokeStyle = "#999";
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x(i), top); ctx.lineTo(x(i), bottom); ctx.stroke();
      ctx.textAlign = "center";
      ctx.fillText(axis.name, x(i), top - 12);
      ctx.textAlign = "left";
      for (const [share, label] of scales[i].labels.slice(0, 8)) ctx.fillText(String(label).slice(0, 14), x(i) + 4, y(share) + 4);
    });
    canvas.dataset.trials = String(trials.length);
    canvas.dataset.axes = String(axes.length);
  }

  async function modelsView() {
    const models = await api("/models?limit=100");
    return [h("section", { class: "card" }, h("h1", { text: "Models" }), table([
      { title: "Model", value: (m) => link(`#/models/${m.id}`, m.id), sort: (m) => m.id },
      { title: "State", value: (m) => m.state, sort: (m) => m.state },
      { title: "Task", value: (m) => m.task, sort: (m) => m.task },
      { title: "Target", value: (m) => (m.targets || []).join(", ") || m.target, sort: (m) => m.target },
      { title: "Job", value: (m) => link(`#/jobs/${m.job_id}`, m.job_id) },
      { title: "Deployed", value: (m) => (m.deployed ? "yes" : ""), sort: (m) => (m.deployed ? 1 : 0) },
      { title: "Created", value: (m) => when(m.created_at), sort: (m) => m.created_at },
    ], models, { id: "models", empty: "No models yet." }))];
  }

  async function modelView(id, gen) {
    const path = `/models/${encodeURIComponent(id)}`;
    const m = await api(path);
    const metrics = (title, values, tableId) => h("section", { class: "card half" }, h("h2", { text: title }),
      table([{ title: "Metric", value: (r) => r[0] }, { title: "Value", value: (r) => fmt(r[1]), class: "num" }],
            Object.entries(values || {}), { id: tableId, empty: "None." }));
    const head = h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h1", { text: `Model ${m.id}` }),
        h("button", { type: "button", class: "secondary", text: "Download .keras", onclick: () => download(m.id) })),
      h("p", { class: "meta" }, `${m.kind} ${m.task} · target ${(m.targets || []).join(", ") || m.target} · ${m.state}`,
        m.deployed ? " · deployed" : "", m.interim ? ` · best so far (trial ${m.trial_id}), replaced as the search goes on` : "",
        " · job ", link(`#/jobs/${m.job_id}`, m.job_id),
        m.split_sizes ? ` · split ${Object.entries(m.split_sizes).map(([k, v]) => `${k} ${v}`).join(", ")}` : ""),
      m.error ? h("p", { class: "error", text: m.error }) : null);
    const curves = curvesPanel("Learning curves: final model", async () => {
      try {
        const history = await api(`${path}/history`);
        return [{ label: "final model", color: COLORS[0], epochs: history.epochs }];
      } catch (error) { if (error.status === 404 || error.status === 409) return []; throw error; }
    });
    const parts = [head, h("div", { class: "row" }, metrics("Test metrics (held-out split)", m.test_metrics, "test-metrics"),
                                                  metrics("Validation metrics", m.validation_metrics, "validation-metrics"))];
    if (m.confusion_matrix) parts.push(confusion(m.confusion_matrix));
    const insight = [m.importance ? importanceCard(m.importance) : null,
                     m.calibration ? calibrationCard(m.calibration) : null].filter(Boolean);
    if (insight.length) parts.push(h("div", { class: "row" }, insight));
    const drift = m.kind === "tabular" && m.state === "ready" ? driftCard(path) : null;
    parts.push(curves.panel, predictForm(m));
    if (drift) parts.push(drift.card);
    poll(gen, async () => { await curves.refresh(); return m.state === "training"; });
    if (drift) drift.refresh().catch((error) => flash(error.message));
    return parts;
  }

  // The inputs served lately against the training rows, refreshed while the page is open.
  function driftCard(path) {
    const body = h("div", {}, h("p", { class: "hint", text: "Loading…" }));
    const card = h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h2", { text: "Drift: the last 24 hours' inputs against the training rows" }),
        h("button", { type: "button", class: "secondary", id: "drift-refresh", text: "Refresh",
                      onclick: () => refresh().catch((error) => flash(error.message)) })),
      body);
    async function refresh() {
      let d;
      try { d = await api(`${path}/drift`); } catch (error) {
        if (error.status === 404) { card.remove(); return; }
        throw error;
      }
      const judged = (c) => (c.drifted === null ? "too few rows" : c.drifted ? "drifted" : "stable");
      body.replaceChildren(
        h("p", { class: "meta", id: "drift-summary",
                 text: `${d.rows} inputs since ${when(d.since)} · PSI above ${d.threshold} is drift · drifted: `
                       + `${d.drifted.length ? d.drifted.join(", ") : "none"}` }),
        table([
          { title: "Column", value: (c) => c.name, sort: (c) => c.name },
          { title: "PSI", value: (c) => fmt(c.psi), sort: (c) => c.psi, class: "num" },
          { title: "State", value: (c) => h("span", { class: `state ${c.drifted ? "failed" : ""}`, text: judged(c) }),
            sort: (c) => judged(c) },
          { title: "Missing (training)", value: (c) => `${fmt(c.missing_share)} (${fmt(c.training_missing_share)})`,
            class: "num" },
          { title: "Out of range / unseen", value: (c) => fmt(c.out_of_range_share ?? c.unseen_share), class: "num" },
        ], d.columns, { id: "drift", sortBy: 1, descending: true, empty: "No input columns." }));
    }
    return { card, refresh };
  }

  function importanceCard(imp) {
    const columns = imp.columns || [];
    const most = Math.max(1e-9, ...columns.map((c) => c.mean));
    return h("section", { class: "card half" }, h("h2", { text: "Which columns matter (test split)" }),
      h("p", { class: "hint", text: `Drop in ${imp.metric} (from ${fmt(imp.baseline)}) when a column's values are `
                                    + `shuffled: mean ± spread over ${imp.repeats} repeats on ${imp.rows} rows.` }),
      barRows(columns.slice(0, 30).map((c) => [c.name, c.mean, `${c.mean.toFixed(4)} ± ${c.std.toFixed(4)}`]),
              most, "importance"),
      columns.length > 30 ? h("p", { class: "hint", text: `and ${columns.length - 30} more columns` }) : null);
  }

  function calibrationCard(cal) {
    const served = cal.applied ? cal.calibrated : cal.uncalibrated;
    const rows = (served.bins || []).map((b) => ({ ...b, range: `${b.lower.toFixed(1)}–${b.upper.toFixed(1)}` }));
    return h("section", { class: "card half" }, h("h2", { text: "Calibration (test split)" }),
      h("p", { class: "meta", id: "calibration-summary",
               text: `ECE ${fmt(cal.uncalibrated.ece)} → ${fmt(cal.calibrated.ece)} with temperature `
                     + `${fmt(cal.temperature)}: ${cal.applied ? "applied to the served probabilities" : "not applied"}` }),
      h("p", { class: "hint", text: cal.reason || "" }),
      table([
        { title: "Predicted", value: (r) => r.range },
        { title: "Rows", value: (r) => String(r.count), class: "num" },
        { title: "Mean predicted", value: (r) => fmt(r.mean_predicted), class: "num" },
        { title: "Observed", value: (r) => fmt(r.observed), class: "num" },
      ], rows, { id: "reliability", empty: "No rows." }));
  }

  function confusion(cm) {
    const section = h("section", { class: "card" }, h("h2", { text: "Confusion matrix (test split)" }),
                      h("p", { class: "hint", text: cm.layout || "" }));
    const grids = cm.matrix ? [[null, cm.matrix, cm.labels]]
      : (cm.matrices || []).map((mm, i) => [(cm.labels || [])[i] ?? `label ${i}`, mm, ["0", "1"]]);
    for (const [title, matrix, labels] of grids) {
      const most = Math.max(1, ...matrix.flat());
      const rows = matrix.map((row, i) => h("tr", {}, h("th", { text: (labels || [])[i] ?? i }), row.map((n, j) => {
        const cell = h("td", { class: `num ${i === j ? "diagonal" : ""}`, text: n });
        cell.style.setProperty("--heat", String(n / most));
        return cell;
      })));
      section.append(title !== null ? h("h3", { text: String(title) }) : "",
        h("table", { class: "confusion", id: title === null ? "confusion" : null },
          h("thead", {}, h("tr", {}, h("th", { text: "true \\ predicted" }), (labels || []).map((l) => h("th", { text: l })))),
          h("tbody", {}, rows)));
    }
    return section;
  }

  function predictForm(m) {
    const inputs = [];
    let image = null;
    for (const column of m.input_schema || []) {
      let input;
      if (column.type === "image") {
        input = image = h("input", { type: "file", accept: "image/*", name: column.name });
      } else if (column.type === "boolean") {
        input = h("select", { name: column.name }, ["", "true", "false"].map((v) => h("option", { value: v, text: v || "(missing)" })));
      } else if (column.type === "categorical") {
        const listId = `values-${inputs.length}`;
        input = h("span", {}, h("input", { name: column.name, list: listId, placeholder: "(missing)" }),
                  h("datalist", { id: listId }, (column.categories || []).map((c) => h("option", { value: c }))));
      } else if (column.type === "datetime") {
        input = h("input", { name: column.name, type: "text", placeholder: "2024-05-17 or 2024-05-17T08:30:00Z" });
      } else {
        input = h("input", { name: column.name, type: "number", step: "any", placeholder: "(missing)" });
      }
      inputs.push(h("label", {}, h("span", { text: column.name }), input));
    }
    const out = h("div", { id: "prediction" });
    const form = h("form", { class: "grid-form", id: "predict" }, inputs);
    const row = () => {
      const instance = {};
      for (const el of form.querySelectorAll("input[name]:not([type=file]), select[name]")) {
        const column = (m.input_schema || []).find((c) => c.name === el.name);
        if (el.value === "") instance[el.name] = null;
        else if (column && column.type === "numeric") instance[el.name] = Number(el.value);
        else if (column && column.type === "boolean") instance[el.name] = el.value === "true";
        else instance[el.name] = el.value;
      }
      return instance;
    };
    async function run(route) {
      try {
        let answer;
        if (image) {
          if (!image.files[0]) { flash("Choose an image file first."); return; }
          const data = new FormData();
          data.append("file", image.files[0]);
          answer = await api(`/models/${encodeURIComponent(m.id)}/${route}`, { method: "POST", body: data });
        } else {
          answer = await api(`/models/${encodeURIComponent(m.id)}/${route}`,
                             { method: "POST", json: { instances: [row()], explain: true } });
        }
        flash("");
        out.replaceChildren(renderPrediction(answer));
      } catch (error) { flash(error.message); }
    }
    const classification = m.classes && m.classes.length;
    form.append(h("div", { class: "buttons" },
      h("button", { type: "button", id: "predict-button", text: "Predict", onclick: () => run("predict") }),
      classification ? h("button", { type: "button", id: "proba-button", class: "secondary", text: "Probabilities",
                                     onclick: () => run("predict_proba") }) : null));
    return h("section", { class: "card" }, h("h2", { text: "Try a prediction" }),
             h("p", { class: "hint", text: "Leave a field empty to send it as missing." }), form, out);
  }

  function renderPrediction(answer) {
    const why = explanation((answer.explanations || [])[0]);
    if (answer.probabilities) {
      const probs = answer.probabilities[0];
      const counts = Object.fromEntries((answer.classes || []).map((c, i) => [String(c), Number(probs[i].toFixed(4))]));
      return h("div", { id: "probabilities" }, h("h3", { text: "Class probabilities" }), bars(counts, 0), why);
    }
    const value = answer.predictions ? answer.predictions[0] : answer;
    return h("div", {}, h("h3", { text: "Prediction" }),
             h("p", { class: "prediction-value", text: typeof value === "object" ? JSON.stringify(value) : fmt(value) }),
             answer.std ? h("p", { class: "meta", text: `std ${JSON.stringify(answer.std[0])}` }) : null, why);
  }

  // Each column's effect on the explained output (multilabel: the first label's), largest first.
  function explanation(e) {
    if (!e) return null;
    const label = typeof e.explains === "object" ? Object.keys(e.explains)[0] : null;
    const effects = Object.entries(label === null ? e.attributions : e.attributions[label]);
    const what = label === null ? e.explains : e.explains[label];
    const most = Math.max(1e-9, ...effects.map(([, v]) => Math.abs(v)));
    return h("div", { id: "explanation" },
      h("h3", { text: `Why: each column's effect on ${what} = ${fmt(label === null ? e.value : e.value[label])}` }),
      h("p", { class: "hint", text: "The output minus the output with that column at its training median (or most "
                                     + "frequent category); bars show the size of the effect." }),
      barRows(effects.map(([name, v]) => [name, Math.abs(v), `${v >= 0 ? "+" : ""}${v.toFixed(4)}`]), most));
  }

  async function download(id) {
    try {
      const response = await api(`/models/${encodeURIComponent(id)}/download`, { raw: true });
      const name = (/filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "") || [])[1]
        || `model-${id}.keras`;
      const url = URL.createObjectURL(await response.blob());
      const a = h("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) { flash(error.message); }
  }

  // -- routing and polling ------------------------------------------------------------------

  function poll(gen, refresh) {
    // Refresh now, then every POLL_MS while refresh() answers true (something still runs) and the
    // user is still on this view. Errors are shown and polling goes on (a restart of the API).
    const tick = async () => {
      if (gen !== generation) return;
      let again = true;
      try {
        again = await refresh();
        const box = document.getElementById("flash");
        if (gen === generation && box.dataset.poll) { delete box.dataset.poll; flash(""); }  // the API is back
      } catch (error) {
        if (gen !== generation || error.status === 401) return;
        flash(error.message);
        document.getElementById("flash").dataset.poll = "1";
      }
      if (again && gen === generation) timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  function askForKey(message) {
    clearTimeout(timer);
    generation += 1;
    const form = document.getElementById("key-form").content.cloneNode(true);
    view.replaceChildren(form);
    flash(message || "");
    document.getElementById("sign-out").hidden = true;
    document.getElementById("key").addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const value = String(data.get("key")).trim();
      sessionStorage.setItem(KEY, value);
      if (data.get("remember")) localStorage.setItem(KEY, value);
      flash("");
      route();
    });
  }

  async function route() {
    clearTimeout(timer);
    generation += 1;
    const gen = generation;
    for (const chart of charts) chart.destroy();
    charts = [];
    if (!key()) { askForKey(); return; }
    document.getElementById("sign-out").hidden = false;
    const [, section, id] = (location.hash || "#/datasets").split("/");
    for (const a of document.querySelectorAll("nav a[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === section);
    }
    const views = { datasets: id ? () => datasetView(id) : datasetsView,
                    jobs: id ? () => jobView(id, gen) : () => jobsView(gen),
                    models: id ? () => modelView(id, gen) : modelsView };
    view.replaceChildren(h("p", { class: "loading", text: "Loading…" }));
    try {
      const parts = await (views[section] || datasetsView)();
      if (gen === generation) { put(view, parts); flash(""); }
    } catch (error) {
      if (gen === generation && error.status !== 401) {
        view.replaceChildren(h("section", { class: "card" }, h("p", { class: "error", text: error.message })));
      }
    }
  }

  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    askForKey("Key forgotten.");
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => {
    for (const chart of charts) chart.setSize({ width: Math.max(320, chart.root.parentNode.clientWidth), height: 300 });
  });
  route();
})();
