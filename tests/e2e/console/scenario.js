// The web console in Debian's Chromium (playwright-core, no browser download), as an operator uses it at 3 a.m.:
// log in, publish through the form and peek at the message, watch a failing function's message be dead-lettered,
// read its error and its executions' logs, fix the function (redeploy), redrive from the console and see the
// execution succeed. Also: a viewer token reads but cannot act; schedules; buckets. A screenshot of every page goes
// to SCREENSHOTS. Run by tests/e2e/console_test.py, which starts Ferry and passes what this needs in the
// environment. Exits non-zero, with the reason, on the first thing that is not as it should be.
"use strict";

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const path = require("path");

const url = process.env.FERRY_URL;
const shots = process.env.SCREENSHOTS;
const timings = {};

function check(ok, message) {
  if (!ok) throw new Error(message);
}

// Loads the console at `hash` afresh (a reload, not a same-document hash change) and waits until it rendered.
async function open(page, hash) {
  const start = Date.now();
  await page.goto("about:blank");
  await page.goto(url + "/console" + hash);
  await page.waitForFunction((h) => document.body.dataset.page === h, hash, { timeout: 15000 });
  timings[hash] = Date.now() - start;
}

async function shot(page, name) {
  const text = await page.textContent("main");
  check(!/\bnull\b|\bundefined\b|\[object /.test(text), name + " shows a placeholder for nothing: " + text);
  await page.screenshot({ path: path.join(shots, name + ".png"), fullPage: true });
}

async function flashText(page) {
  await page.waitForSelector("#flash:not([hidden])", { timeout: 15000 });
  const text = await page.textContent("#flash");
  await page.evaluate(() => { document.getElementById("flash").hidden = true; });
  return text;
}

async function login(page, token) {
  await page.goto(url + "/console#/login");
  await page.waitForSelector("#login-form");
  await page.fill("input[name=token]", token);
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction(() => document.body.dataset.page === "#/", null, { timeout: 15000 });
}

// Reloads `hash` until `selector` is on it (the console shows what the server has when it renders).
async function until(page, hash, selector, what, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    await open(page, hash);
    if (await page.$(selector)) return;
    if (Date.now() > deadline) {
      await shot(page, "timeout");
      throw new Error("timed out waiting for " + what + "; the page says: " + (await page.textContent("main")));
    }
    await page.waitForTimeout(500);
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => d.accept());

  // Tokens are on: the console asks for one.
  await page.goto(url + "/console");
  await page.waitForSelector("#login-form");
  await shot(page, "01-login");

  // A viewer reads, and is refused when it acts.
  await login(page, process.env.VIEWER_TOKEN);
  await open(page, "#/topics/work");
  await page.fill("#publish-form textarea[name=data]", "from a viewer");
  await page.click("#publish-form button[type=submit]");
  const refused = await flashText(page);
  check(/permission|role/i.test(refused), "a viewer's publish was not refused: " + refused);
  await page.click("#logout");

  // An admin publishes through the form...
  await login(page, process.env.ADMIN_TOKEN);
  await open(page, "#/topics/work");
  await page.fill("#publish-form textarea[name=data]", "order 7 from the console");
  await page.fill("#publish-form textarea[name=attributes]", "order=7\nsource=console");
  await page.click("#publish-form button[type=submit]");
  await page.waitForSelector(".message-id");
  const messageId = (await page.textContent(".message-id")).trim();
  check(/^\d+$/.test(messageId), "no message id after publishing: " + messageId);
  await shot(page, "02-topic");

  // ...and sees it by peeking at a subscription of the topic (peeking leaves it there).
  for (let i = 0; i < 2; ++i) {
    await open(page, "#/subscriptions/audit");
    const row = await page.$(`tr[data-message-id="${messageId}"]`);
    check(row, "the published message is not in the peek of audit");
    const text = await row.textContent();
    check(text.includes("order 7 from the console") && text.includes("order=7"), "peeked row lacks data: " + text);
  }
  await shot(page, "03-subscription");

  // The function fails on it until its five attempts are spent: dead-lettered.
  const dl = "#/dead-letters/gcf-worker-local-work";
  await until(page, dl, "tr[data-message-id] button.show", "the message to be dead-lettered");
  const row = await page.$("tr[data-message-id]");
  const rowText = await row.textContent();
  check(rowText.includes("order 7 from the console"), "the dead letter is another message: " + rowText);
  check(rowText.includes("cannot handle order 7 from the console yet"), "the dead letter lacks its error: " + rowText);
  // Why: the error, and each attempt's execution with its log.
  await page.click("tr[data-message-id] button.show");
  await page.waitForSelector(".detail pre.log");
  const detail = await page.textContent(".detail");
  check((detail.match(/Attempt \d/g) || []).length === 5, "not five attempts in the detail: " + detail);
  check(detail.includes("RuntimeError: cannot handle order 7 from the console yet"), "no traceback in the log: " +
    detail);
  await shot(page, "04-dead-letters");

  // Fixed: redeployed, then redriven from the console.
  execFileSync(process.env.FERRY_BIN, ["deploy", "-f", process.env.FIXED_DEPLOY], {
    env: { ...process.env, FERRY_ENDPOINT: url, FERRY_TOKEN: process.env.ADMIN_TOKEN, FERRY_PROJECT: "console" },
    stdio: "pipe",
  });
  await open(page, dl);
  await page.check("tr[data-message-id] input[type=checkbox]");
  await page.click("#redrive-selected");
  const redrove = await flashText(page);
  check(redrove.includes("Redrove 1"), "redrive said: " + redrove);
  await page.waitForFunction(() => !document.querySelector("tr[data-message-id]"), null, { timeout: 15000 });

  // The function ran it: an ok execution, whose log shows what it handled.
  await until(page, "#/functions/worker", "tr[data-execution-id] td.status-ok", "the redriven message's execution");
  await page.click("tr[data-execution-id]:has(td.status-ok) a");
  await page.waitForSelector("pre.log");
  const log = await page.textContent("pre.log");
  check(log.includes("handled order 7 from the console"), "the ok execution's log: " + log);
  // Call now, and follow the live log.
  await page.check("#follow");
  await page.fill("#call-form textarea[name=data]", "called from the console");
  await page.click("#call-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("pre.follow").textContent
    .includes("handled called from the console"), null, { timeout: 15000 });
  await shot(page, "05-function");

  // The overview counts it all.
  await open(page, "#/");
  const overview = await page.textContent("main");
  check(overview.includes("worker") && overview.includes("ACTIVE"), "overview lacks the function: " + overview);
  await shot(page, "06-overview");

  // Schedules: run now, pause.
  await open(page, "#/schedules");
  await page.click('tr[data-schedule="nightly"] button:has-text("Run now")');
  check((await flashText(page)).includes("Ran nightly"), "run now");
  await page.click('tr[data-schedule="nightly"] button:has-text("Pause")');
  await page.waitForSelector('tr[data-schedule="nightly"] td.state-PAUSED');
  await shot(page, "07-schedules");

  // Buckets: browse, upload, see it.
  await open(page, "#/buckets");
  await shot(page, "08-buckets");
  await open(page, "#/buckets/uploads");
  await page.setInputFiles("#upload-form input[type=file]", {
    name: "report.csv", mimeType: "text/csv", buffer: Buffer.from("a,b\n1,2\n"),
  });
  await page.click("#upload-form button[type=submit]");
  await page.waitForSelector('tr[data-object="report.csv"]', { timeout: 15000 });
  const download = page.waitForEvent("download");
  await page.click('tr[data-object="report.csv"] button:has-text("Download")');
  const file = await download;
  check(file.suggestedFilename() === "report.csv", "download name " + file.suggestedFilename());
  await shot(page, "09-bucket");

  check(errors.length === 0, "errors in the page: " + errors.join("; "));
  await browser.close();
  console.log(JSON.stringify({ ok: true, timings_ms: timings }));
}

main().catch((e) => {
  console.error("console scenario failed: " + (e.stack || e.message));
  process.exit(1);
});
