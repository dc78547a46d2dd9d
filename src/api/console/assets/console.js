// Ferry's web console: one page, routed by the URL fragment, that reads and acts only through Ferry's own APIs
// (admin, Pub/Sub REST, storage) with the token the user logged in with. No framework and no build step: the
// daemon serves this file as it is. Every value from the server goes into the page as text (no innerHTML).
"use strict";

const state = {
  token: sessionStorage.getItem("ferry-token") || "",
  project: sessionStorage.getItem("ferry-project") || "",
  timers: [],
  lastOverview: null,  // {at, counters} for rates between refreshes
};

// ---- DOM and formatting ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Sets an element's children, leaving out the null, undefined and false that conditional parts give.
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false)
    .map((k) => (k instanceof Node ? k : document.createTextNode(String(k)))));
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "None.");
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.endsWith("#") ? "num" : "" }, x.replace(/#$/, ""))))),
    h("tbody", {}, rows));
}

const num = (v) => h("td", { class: "num" }, v === undefined || v === null ? "" : v);
const shortName = (name) => String(name || "").split("/").pop();
const fmtRate = (v) => (v === null ? "" : v < 10 ? v.toFixed(2) : v.toFixed(0)) + (v === null ? "" : "/s");

function fmtAge(seconds) {
  if (!seconds) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function flash(message, bad) {
  const el = document.getElementById("flash");
  el.textContent = message;
  el.className = bad ? "bad" : "";
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 4000);
}

function b64encode(text) {
  const bytes = new TextEncoder().encode(text);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function b64decode(data) {
  try {
    const s = atob(data || "");
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(s, (c) => c.charCodeAt(0)));
  } catch (e) {
    return "(" + (data || "").length + " base64 characters, not text)";
  }
}

function parseAttributes(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const eq = t.indexOf("=");
    if (eq <= 0) throw new Error("attributes are KEY=VALUE lines: \"" + t + "\"");
    out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

// ---- API ----

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body, opts) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let payload;
  if (opts && opts.raw !== undefined) {
    payload = opts.raw;
    headers["Content-Type"] = opts.contentType || "application/octet-stream";
  } else if (method !== "GET") {
    payload = JSON.stringify(body || {});
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  if (opts && opts.blob && res.ok) return res.blob();
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = null; }
  if (!res.ok) {
    const message = json && json.error && json.error.message ? json.error.message : text || res.statusText;
    if (res.status === 401) {
      location.hash = "#/login";
      throw new ApiError(401, "Log in with a token: " + message);
    }
    throw new ApiError(res.status, message);
  }
  return json;
}

const P = () => encodeURIComponent(state.project);
const admin = (rest) => "/ferry/v1/projects/" + P() + rest;
const pubsub = (rest) => "/v1/projects/" + P() + rest;
const enc = encodeURIComponent;

// ---- pages ----

function page(title, subtitle, ...content) {
  return [h("h1", {}, title), subtitle ? h("p", { class: "sub" }, subtitle) : null, ...content];
}

function every(ms, fn) {
  state.timers.push(setInterval(fn, ms));
}

async function overviewPage(main) {
  const render = async () => {
    const o = await call("GET", admin("/overview"));
    const now = performance.now();
    const prev = state.lastOverview && state.lastOverview.project === state.project ? state.lastOverview : null;
    const seconds = prev ? (now - prev.at) / 1000 : 0;
    const rate = (key, value) => (prev && seconds > 0 && prev.counters[key] !== undefined
      ? Math.max(0, (value - prev.counters[key]) / seconds) : null);
    const counters = {};
    const topics = o.topics.map((t) => {
      counters["t" + t.name] = t.publishedMessages;
      return h("tr", {},
        h("td", {}, h("a", { href: "#/topics/" + enc(shortName(t.name)) }, shortName(t.name))),
        num(t.publishedMessages), num(fmtRate(rate("t" + t.name, t.publishedMessages))));
    });
    const subs = o.subscriptions.map((s) => {
      counters["s" + s.name] = s.acked;
      const id = shortName(s.name);
      return h("tr", {},
        h("td", {}, h("a", { href: "#/subscriptions/" + enc(id) }, id)),
        h("td", {}, shortName(s.topic)),
        num(s.backlog), num(fmtAge(s.oldestUnackedAgeSeconds)), num(s.acked),
        num(fmtRate(rate("s" + s.name, s.acked))),
        h("td", { class: "num" }, s.deadLetterTopic
          ? h("a", { href: "#/dead-letters/" + enc(id) }, String(s.deadLettered)) : ""));
    });
    const fns = o.functions.map((f) => {
      const e = f.executions || {};
      const total = Object.values(e).reduce((a, b) => a + b, 0);
      const failed = total - (e.ok || 0);
      const id = shortName(f.name);
      return h("tr", {},
        h("td", {}, h("a", { href: "#/functions/" + enc(id) }, id)),
        h("td", { class: "state-" + f.state }, f.state),
        h("td", {}, f.spec.event_trigger_type === "http" ? "HTTP" : shortName(f.spec.event_trigger_resource)),
        num(f.instancesBusy + " / " + f.instancesRunning), num(f.spec.max_instances),
        num(total), num(failed), num(total ? (100 * failed / total).toFixed(1) + " %" : ""));
    });
    state.lastOverview = { project: state.project, at: now, counters };
    fill(main, ...page("Overview", "Project " + o.project + " · " + fmtTime(o.time),
      h("h2", {}, "Functions"),
      table(["Function", "State", "Trigger", "Busy / running#", "Max instances#", "Executions#", "Failed#",
             "Error rate#"], fns, "No functions deployed."),
      h("h2", {}, "Subscriptions"),
      table(["Subscription", "Topic", "Backlog#", "Oldest unacked#", "Acked#", "Ack rate#", "Dead-lettered#"], subs),
      h("h2", {}, "Topics"),
      table(["Topic", "Published#", "Publish rate#"], topics)));
  };
  await render();
  every(5000, () => render().catch((e) => flash(e.message, true)));
}

async function topicPage(main, id) {
  const topic = await call("GET", pubsub("/topics/" + enc(id)));
  const subs = await call("GET", pubsub("/topics/" + enc(id) + "/subscriptions"));
  const result = h("div", {});
  const form = h("form", { class: "inline", id: "publish-form" },
    h("label", {}, "Data", h("textarea", { name: "data", placeholder: "{}" })),
    h("label", {}, "Attributes (KEY=VALUE lines)", h("textarea", { name: "attributes" })),
    h("label", {}, "Ordering key", h("input", { name: "orderingKey" })),
    h("button", { class: "primary", type: "submit" }, "Publish"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const message = { data: b64encode(form.data.value), attributes: parseAttributes(form.attributes.value) };
      if (form.orderingKey.value) message.orderingKey = form.orderingKey.value;
      const res = await call("POST", pubsub("/topics/" + enc(id) + ":publish"), { messages: [message] });
      fill(result, h("p", {}, "Published message ", h("code", { class: "message-id" }, res.messageIds[0])));
      flash("Published " + res.messageIds[0]);
    } catch (e) { flash(e.message, true); }
  });
  fill(main, ...page("Topic " + id, topic.name,
    h("section", { class: "card" }, h("h2", {}, "Publish"), form, result),
    h("h2", {}, "Subscriptions"),
    table(["Subscription"], (subs.subscriptions || []).map((s) =>
      h("tr", {}, h("td", {}, h("a", { href: "#/subscriptions/" + enc(shortName(s)) }, shortName(s))))))));
}

function messagesTable(messages, extra) {
  return table(["Message id", "Published", "Data", "Attributes", "Attempts#"].concat(extra ? extra.headers : []),
    messages.map((m) => h("tr", { "data-message-id": m.messageId },
      h("td", { class: "mono" }, m.messageId), h("td", {}, fmtTime(m.publishTime)),
      h("td", { class: "mono data" }, m.dataPreview),
      h("td", { class: "mono" }, Object.entries(m.attributes || {}).filter(([k]) => !extra || !extra.hide(k))
        .map(([k, v]) => k + "=" + v).join("\n")),
      num(m.deliveryAttempts), ...(extra ? extra.cells(m) : []))),
    "No messages waiting.");
}

async function subscriptionPage(main, id) {
  const sub = await call("GET", pubsub("/subscriptions/" + enc(id)));
  const peekBox = h("div", {});
  const peek = async (after) => {
    const res = await call("GET", admin("/subscriptions/" + enc(id) + "/messages?limit=50" +
      (after ? "&after=" + enc(after) : "")));
    fill(peekBox, messagesTable(res.messages),
      res.nextAfter ? h("button", { onclick: () => peek(res.nextAfter).catch((e) => flash(e.message, true)) },
        "Next 50") : null);
  };
  const snapshots = await call("GET", pubsub("/snapshots")).catch(() => ({ snapshots: [] }));
  const seek = h("form", { class: "inline" },
    h("label", {}, "To a time", h("input", { name: "time", type: "datetime-local", step: "1" })),
    h("label", {}, "or a snapshot", h("select", { name: "snapshot" }, h("option", { value: "" }, "—"),
      (snapshots.snapshots || []).filter((s) => s.topic === sub.topic)
        .map((s) => h("option", { value: s.name }, shortName(s.name))))),
    h("button", { type: "submit" }, "Seek"));
  seek.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const body = seek.snapshot.value ? { snapshot: seek.snapshot.value }
        : { time: new Date(seek.time.value || Date.now()).toISOString() };
      await call("POST", pubsub("/subscriptions/" + enc(id) + ":seek"), body);
      flash("Seeked " + id);
      await peek();
    } catch (e) { flash(e.message, true); }
  });
  const settings = h("dl", { class: "grid" },
    [["Topic", sub.topic], ["Ack deadline", (sub.ackDeadlineSeconds || 10) + " s"],
     ["Delivery", sub.pushConfig && sub.pushConfig.pushEndpoint ? "push to " + sub.pushConfig.pushEndpoint : "pull"],
     ["Retention", sub.messageRetentionDuration || ""], ["Ordering", sub.enableMessageOrdering ? "on" : "off"],
     ["Filter", sub.filter || ""],
     ["Retry", sub.retryPolicy ? sub.retryPolicy.minimumBackoff + " – " + sub.retryPolicy.maximumBackoff : "immediate"],
     ["Dead letters", sub.deadLetterPolicy ? sub.deadLetterPolicy.deadLetterTopic + " after " +
       (sub.deadLetterPolicy.maxDeliveryAttempts || 5) + " attempts" : "none"]]
      .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  fill(main, ...page("Subscription " + id, sub.name,
    sub.deadLetterPolicy ? h("p", {}, h("a", { href: "#/dead-letters/" + enc(id) }, "Dead letters of " + id)) : null,
    h("section", { class: "card" }, h("h2", {}, "Settings"), settings),
    h("section", { class: "card" }, h("h2", {}, "Seek"), seek),
    h("h2", {}, "Waiting messages (peeked: not leased, no attempt counted)"),
    h("div", { class: "actions" }, h("button", { onclick: () => peek().catch((e) => flash(e.message, true)) },
      "Refresh")),
    peekBox));
  await peek();
}

async function logLines(fn, executionId) {
  const res = await call("GET", admin("/functions/" + enc(fn) + "/logs?limit=200&executionId=" + enc(executionId)));
  return h("pre", { class: "log", "data-execution-id": executionId },
    (res.entries || []).map((l) => fmtTime(l.time) + " " + l.severity + " [" + l.stream + "] " + l.message).join("\n")
    || "(no lines)");
}

async function deadLettersPage(main, id) {
  const functions = await call("GET", admin("/functions"));
  const fn = (functions.functions || []).find((f) => f.triggerSubscription && shortName(f.triggerSubscription) === id);
  const listBox = h("div", {});
  const selected = new Set();
  const act = async (verb, body) => {
    try {
      const res = await call("POST", admin("/subscriptions/" + enc(id) + "/deadLetters:" + verb), body);
      const n = (res.redriven || res.purged || []).length;
      flash((verb === "redrive" ? "Redrove " : "Purged ") + n + " message(s)");
      selected.clear();
      await load();
    } catch (e) { flash(e.message, true); }
  };
  const load = async () => {
    const res = await call("GET", admin("/subscriptions/" + enc(id) + "/deadLetters?limit=200"));
    const detail = h("div", { class: "detail" });
    const show = async (m) => {
      const parts = [h("h2", {}, "Message " + m.messageId),
        h("p", { class: "error" }, m.lastError || "(no error recorded)"), h("pre", {}, b64decode(m.data))];
      if (fn && m.sourceMessageId) {
        const ex = await call("GET", admin("/functions/" + enc(shortName(fn.name)) + "/executions?limit=50&messageId=" +
          enc(m.sourceMessageId)));
        for (const e of ex.executions || []) {
          parts.push(h("h2", {}, "Attempt " + e.attempt + " · ", h("span", { class: "status-" + e.status }, e.status),
            " · " + e.durationMs + " ms · " + fmtTime(e.startTime)));
          if (e.error) parts.push(h("p", { class: "error" }, e.error));
          parts.push(await logLines(shortName(fn.name), e.executionId));
        }
      }
      fill(detail, h("section", { class: "card" }, parts));
    };
    const hide = (k) => k.startsWith("CloudPubSubDeadLetterSource") || k === "FerryLastError" ||
      k === "FerrySourceMessageId";
    fill(listBox,
      h("div", { class: "actions" },
        h("button", { class: "primary", id: "redrive-selected",
          onclick: () => act("redrive", { messageIds: [...selected] }) }, "Redrive selected"),
        h("button", { id: "redrive-all", onclick: () => act("redrive", { all: true }) }, "Redrive all"),
        h("button", { class: "danger", id: "purge-selected",
          onclick: () => confirm("Drop the selected messages for good?") && act("purge", { messageIds: [...selected] }) },
          "Purge selected"),
        h("button", { class: "danger", id: "purge-all",
          onclick: () => confirm("Drop every dead letter of " + id + " for good?") && act("purge", { all: true }) },
          "Purge all")),
      messagesTable(res.messages, {
        headers: ["Last error", "Redrives#", ""],
        hide,
        cells: (m) => [h("td", { class: "error" }, m.lastError || ""), num(m.redrives),
          h("td", {},
            h("input", { type: "checkbox", "aria-label": "select " + m.messageId,
              onchange: (ev) => (ev.target.checked ? selected.add(m.messageId) : selected.delete(m.messageId)) }),
            " ", h("button", { class: "show", onclick: () => show(m).catch((e) => flash(e.message, true)) }, "Why?"))],
      }),
      detail);
  };
  fill(main, ...page("Dead letters of " + id,
    "Messages the subscription gave up on" + (fn ? ", for function " + shortName(fn.name) : "") +
    ". Redrive sends them back to " + id + " alone.", listBox));
  await load();
}

async function functionPage(main, id) {
  const f = await call("GET", admin("/functions/" + enc(id)));
  const s = f.spec;
  const execBox = h("div", {});
  const logBox = h("div", {});
  const loadExecutions = async () => {
    const res = await call("GET", admin("/functions/" + enc(id) + "/executions?limit=50"));
    fill(execBox, table(["Started", "Execution", "Trigger", "Attempt#", "Status", "Duration#", "Error"],
      (res.executions || []).map((e) => h("tr", { "data-execution-id": e.executionId },
        h("td", {}, fmtTime(e.startTime)),
        h("td", {}, h("a", { href: "#", class: "mono", onclick: async (ev) => {
          ev.preventDefault();
          fill(logBox, h("h2", {}, "Execution " + e.executionId), await logLines(id, e.executionId));
        } }, e.executionId)),
        h("td", {}, e.trigger), num(e.attempt), h("td", { class: "status-" + e.status }, e.status),
        num(e.durationMs + " ms"), h("td", { class: "error" }, e.error || ""))), "No executions yet."));
  };
  // Live follow: the newest lines, then every line after the last one seen, once a second.
  const follow = h("pre", { class: "log follow" });
  let after = 0;
  let following = false;
  const poll = async () => {
    if (!following) return;
    const res = await call("GET", admin("/functions/" + enc(id) + "/logs?limit=200" + (after ? "&after=" + after : "")));
    for (const l of res.entries || []) {
      follow.append(fmtTime(l.time) + " " + l.severity + " " + (l.executionId || "") + " " + l.message + "\n");
      after = Math.max(after, Number(l.seq) || 0);
    }
    follow.scrollTop = follow.scrollHeight;
  };
  every(1000, () => poll().catch(() => {}));
  every(5000, () => loadExecutions().catch(() => {}));
  const callResult = h("div", {});
  const form = h("form", { class: "inline", id: "call-form" },
    h("label", {}, s.event_trigger_type === "http" ? "Request body" : "Event data",
      h("textarea", { name: "data", placeholder: "{}" })),
    h("button", { class: "primary", type: "submit" }, "Call now"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fill(callResult, h("p", { class: "muted" }, "Running…"));
    try {
      const r = await call("POST", admin("/functions/" + enc(id) + ":call"), { data: form.data.value });
      fill(callResult, h("p", {}, "Execution ", h("code", {}, r.executionId), ": ",
        h("span", { class: "status-" + r.status }, r.status), r.error ? h("span", { class: "error" }, " " + r.error) : ""),
        r.result ? h("pre", {}, r.result) : null);
      await loadExecutions();
    } catch (e) { fill(callResult, h("p", { class: "error" }, e.message)); }
  });
  const settings = [
    ["State", h("span", { class: "state-" + f.state }, f.state + (f.error ? ": " + f.error : ""))],
    ["Runtime", s.runtime], ["Entry point", s.entry_point],
    ["Trigger", s.event_trigger_type === "http" ? "HTTP" : s.event_trigger_type + " " + s.event_trigger_resource],
    ["Retry", s.event_trigger_retry ? "on" : "off"], ["Dead-letter topic", s.dead_letter_topic || "none"],
    ["Max delivery attempts", s.max_delivery_attempts], ["Instances", f.instancesBusy + " busy / " +
      f.instancesRunning + " running (max " + s.max_instances + ", min " + s.min_instances + ")"],
    ["Memory", s.memory_mb + " MB"], ["Timeout", s.timeout + " s"], ["Concurrency", s.concurrency],
    ["Environment", Object.keys(s.env_vars || {}).map((k) => k + "=(hidden)").join(", ") || "none"],
    ["Nodes", (f.nodes || []).map((n) => n.node + ": " + n.instancesBusy + "/" + n.instancesRunning).join(", ")],
  ].filter(([, v]) => v !== "" && v !== undefined);
  fill(main, ...page("Function " + id, f.name,
    f.triggerSubscription && s.dead_letter_topic
      ? h("p", {}, h("a", { href: "#/dead-letters/" + enc(shortName(f.triggerSubscription)) }, "Dead letters")) : null,
    h("section", { class: "card" }, h("h2", {}, "Settings"),
      h("dl", { class: "grid" }, settings.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
    h("section", { class: "card" }, h("h2", {}, "Call"), form, callResult),
    h("h2", {}, "Recent executions"), execBox, logBox,
    h("h2", {}, "Live log"),
    h("label", {}, h("input", { type: "checkbox", id: "follow", onchange: (ev) => {
      following = ev.target.checked;
      if (following) poll().catch((e) => flash(e.message, true));
    } }), " Follow"), follow));
  await loadExecutions();
}

async function schedulesPage(main) {
  const render = async () => {
    const res = await call("GET", admin("/schedules"));
    const act = (id, verb) => async () => {
      try {
        await call("POST", admin("/schedules/" + enc(id) + ":" + verb), {});
        flash(verb === "run" ? "Ran " + id : id + ": " + verb + "d");
        await render();
      } catch (e) { flash(e.message, true); }
    };
    const inZone = (iso, zone) => {
      if (!iso) return "";
      try {
        return new Date(iso).toLocaleString(undefined, { timeZone: zone || "UTC", timeZoneName: "short" });
      } catch (e) { return iso; }
    };
    fill(main, ...page("Schedules", "Cloud Scheduler jobs deployed in " + state.project,
      table(["Schedule", "When", "Time zone", "Target", "Next run", "Last run", "State", ""],
        (res.schedules || []).map((j) => h("tr", { "data-schedule": j.id },
          h("td", {}, j.id), h("td", { class: "mono" }, j.schedule), h("td", {}, j.time_zone || "UTC"),
          h("td", {}, j.topic ? "topic " + shortName(j.topic) : "function " + shortName(j.function)),
          h("td", {}, inZone(j.next_fire_time, j.time_zone)), h("td", {}, inZone(j.last_fired_time, j.time_zone)),
          h("td", { class: "state-" + j.state }, j.state),
          h("td", {}, h("div", { class: "actions" },
            h("button", { onclick: act(j.id, "run") }, "Run now"),
            j.state === "PAUSED" ? h("button", { onclick: act(j.id, "resume") }, "Resume")
              : h("button", { onclick: act(j.id, "pause") }, "Pause"))))),
        "No schedules deployed.")));
  };
  await render();
}

async function bucketsPage(main) {
  const res = await call("GET", "/storage/v1/b?project=" + P());
  fill(main, ...page("Buckets", "Directories Ferry serves as Cloud Storage buckets",
    table(["Bucket", "Created"], (res.items || []).map((b) => h("tr", {},
      h("td", {}, h("a", { href: "#/buckets/" + enc(b.name) }, b.name)), h("td", {}, fmtTime(b.timeCreated)))),
      "No buckets deployed.")));
}

async function bucketPage(main, bucket, prefix) {
  const base = "/storage/v1/b/" + enc(bucket) + "/o";
  const res = await call("GET", base + "?delimiter=/&prefix=" + enc(prefix));
  const meta = h("div", {});
  const upload = h("form", { class: "inline", id: "upload-form" },
    h("label", {}, "File", h("input", { type: "file", name: "file" })),
    h("button", { class: "primary", type: "submit" }, "Upload to " + (prefix || "/")));
  upload.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = upload.file.files[0];
    if (!file) return flash("Choose a file first", true);
    try {
      await call("POST", "/upload" + base + "?uploadType=media&name=" + enc(prefix + file.name), null,
        { raw: file, contentType: file.type || "application/octet-stream" });
      flash("Uploaded " + prefix + file.name);
      route();
    } catch (e) { flash(e.message, true); }
  });
  const download = async (name) => {
    const blob = await call("GET", base + "/" + enc(name) + "?alt=media", null, { blob: true });
    const a = h("a", { href: URL.createObjectURL(blob), download: name.split("/").pop() });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };
  const up = prefix ? prefix.replace(/[^/]*\/$/, "") : null;
  const link = (p) => "#/buckets/" + enc(bucket) + (p ? "?prefix=" + enc(p) : "");
  const rows = [
    ...(up !== null ? [h("tr", {}, h("td", {}, h("a", { href: link(up) }, "..")), h("td"), h("td"), h("td"))] : []),
    ...(res.prefixes || []).map((p) => h("tr", {}, h("td", {}, h("a", { href: link(p) }, p.slice(prefix.length))),
      h("td"), h("td"), h("td"))),
    ...(res.items || []).map((o) => h("tr", { "data-object": o.name },
      h("td", {}, o.name.slice(prefix.length)), num(o.size), h("td", {}, fmtTime(o.updated)),
      h("td", {}, h("div", { class: "actions" },
        h("button", { onclick: () => download(o.name).catch((e) => flash(e.message, true)) }, "Download"),
        h("button", { onclick: () => fill(meta, h("section", { class: "card" }, h("h2", {}, o.name),
          h("pre", {}, JSON.stringify(o, null, 2)))) }, "Metadata"))))),
  ];
  fill(main, ...page("Bucket " + bucket, "/" + prefix,
    h("section", { class: "card" }, upload),
    table(["Name", "Size#", "Updated", ""], rows, "Empty."), meta));
}

function loginPage(main) {
  const form = h("form", { class: "login card", id: "login-form" },
    h("h1", {}, "Log in"),
    h("p", { class: "muted" }, "A Ferry API token (ferry serve --token-file): viewer reads, admin acts."),
    h("label", {}, "Token", h("input", { type: "password", name: "token", autocomplete: "current-password" })),
    h("p", {}, h("button", { class: "primary", type: "submit" }, "Log in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.token = form.token.value.trim();
    try {
      const info = await call("GET", "/ferry/v1/info");
      sessionStorage.setItem("ferry-token", state.token);
      if (!state.project) setProject(info.project);
      location.hash = "#/";
    } catch (e) {
      state.token = "";
      flash(e.status === 401 || e.status === 403 ? "That token is not valid here" : e.message, true);
    }
  });
  fill(main, form);
}

// ---- routing ----

const routes = [
  [/^#?\/?$/, (m) => overviewPage(m)],
  [/^#\/login$/, (m) => loginPage(m)],
  [/^#\/topics\/([^/?]+)$/, (m, id) => topicPage(m, decodeURIComponent(id))],
  [/^#\/subscriptions\/([^/?]+)$/, (m, id) => subscriptionPage(m, decodeURIComponent(id))],
  [/^#\/dead-letters\/([^/?]+)$/, (m, id) => deadLettersPage(m, decodeURIComponent(id))],
  [/^#\/functions\/([^/?]+)$/, (m, id) => functionPage(m, decodeURIComponent(id))],
  [/^#\/schedules$/, (m) => schedulesPage(m)],
  [/^#\/buckets$/, (m) => bucketsPage(m)],
  [/^#\/buckets\/([^/?]+)(?:\?prefix=(.*))?$/, (m, b, p) => bucketPage(m, decodeURIComponent(b),
    p ? decodeURIComponent(p) : "")],
];

async function route() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  const main = document.getElementById("main");
  document.getElementById("logout").hidden = !state.token;
  const hash = location.hash || "#/";
  for (const [re, render] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    try {
      await render(main, ...m.slice(1));
    } catch (e) {
      if (e.status === 401) return;  // on its way to the login page
      fill(main, h("h1", {}, "Cannot show this page"), h("p", { class: "error" }, e.message));
    }
    document.body.dataset.page = hash;  // for tests and screenshots: the page finished rendering
    return;
  }
  fill(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Overview")));
}

function setProject(project) {
  state.project = project;
  sessionStorage.setItem("ferry-project", project);
  document.getElementById("project").value = project;
}

async function start() {
  const input = document.getElementById("project");
  input.addEventListener("change", () => { setProject(input.value.trim()); route(); });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem("ferry-token");
    state.token = "";
    location.hash = "#/login";
  });
  window.addEventListener("hashchange", route);
  if (!state.project) {
    try {
      setProject((await call("GET", "/ferry/v1/info")).project);
    } catch (e) {
      if (e.status === 401) return route();
    }
  } else {
    input.value = state.project;
  }
  await route();
}

start();
