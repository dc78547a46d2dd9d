// Issue 16's workload C through Google's Node.js client over gRPC, as ../shared/peers-bench runs it: one unbatched
// publish at a time (each awaited) paced at RATE/s while a StreamingPull subscriber (the client's 5 streams) acks
// them; publish call -> subscriber callback latency, same process, same clock. With STAGES=1 it also reads Ferry's
// ferry_stage_latency_seconds before and after (ferry serve --latency-stages) and prints the stages' deltas.
// Run by bench/latency_bench.sh. Prints one JSON line.
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT COUNT=2000 RATE=500 node bench/pubsub_latency.js
'use strict';
const http = require('node:http');
const {PubSub} = require('@google-cloud/pubsub');

const count = Number(process.env.COUNT || 2000);
const rate = Number(process.env.RATE || 500);
const tag = process.env.TAG || `lat${process.pid}`;
const host = process.env.PUBSUB_EMULATOR_HOST;
const pubsub = new PubSub({projectId: 'bench'});

function metrics() {
  return new Promise((resolve, reject) => {
    http.get(`http://${host}/metrics`, res => {
      let body = '';
      res.on('data', d => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

// {stage: {count, sum, buckets: [[le, cumulative], ...]}} from the text format.
function stages(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^ferry_stage_latency_seconds_(bucket|sum|count)\{stage="([a-z_]+)"(?:,le="([^"]+)")?\} (\S+)$/.exec(line);
    if (!m) continue;
    const s = (out[m[2]] ??= {count: 0, sum: 0, buckets: []});
    if (m[1] === 'bucket') s.buckets.push([m[3] === '+Inf' ? Infinity : Number(m[3]), Number(m[4])]);
    else s[m[1]] = Number(m[4]);
  }
  return out;
}

// A quantile from cumulative buckets, linear within its bucket (as Prometheus's histogram_quantile).
function quantile(buckets, q) {
  const total = buckets[buckets.length - 1][1];
  if (total === 0) return 0;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [le, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * (rank - below) / Math.max(1, cumulative - below);
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

function delta(before, after) {
  const out = {};
  for (const [name, a] of Object.entries(after)) {
    const b = before[name] || {count: 0, sum: 0, buckets: a.buckets.map(([le]) => [le, 0])};
    const n = a.count - b.count;
    if (n <= 0) continue;
    const buckets = a.buckets.map(([le, c], i) => [le, c - b.buckets[i][1]]);
    out[name] = {count: n, mean_us: +((a.sum - b.sum) / n * 1e6).toFixed(1),
                 p50_us: +(quantile(buckets, 0.5) * 1e6).toFixed(1), p99_us: +(quantile(buckets, 0.99) * 1e6).toFixed(1)};
  }
  return out;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));
const now = () => performance.now();

async function main() {
  const [topic] = await pubsub.createTopic(`${tag}-topic`);
  await topic.createSubscription(`${tag}-sub`, {ackDeadlineSeconds: 60});
  const publisher = pubsub.topic(`${tag}-topic`, {batching: {maxMessages: 1}});
  const sentAt = new Float64Array(count).fill(NaN);
  const recvAt = new Float64Array(count).fill(NaN);
  let got = 0;
  const sub = pubsub.subscription(`${tag}-sub`, {flowControl: {maxMessages: 2000},
    streamingOptions: {maxStreams: Number(process.env.STREAMS || 5)}});
  sub.on('message', m => {
    const i = m.data.readUInt32BE(0);
    if (Number.isNaN(recvAt[i])) {
      recvAt[i] = now();
      got++;
    }
    m.ack();
  });
  // Warm up: the streams open and the channels connect before anything is timed.
  await sleep(500);
  const before = process.env.STAGES ? stages(await metrics()) : {};
  const payload = i => {
    const b = Buffer.alloc(100, 'x');
    b.writeUInt32BE(i, 0);
    return b;
  };
  const start = now();
  for (let i = 0; i < count; i++) {
    const due = start + i * 1000 / rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    else while (now() < due) { /* spin below a millisecond */ }
    sentAt[i] = now();
    await publisher.publishMessage({data: payload(i), attributes: {k: 'v'}});
  }
  const publishEnd = now();
  for (let t = 0; got < count && t < 30000; t += 5) await sleep(5);
  await sleep(300);  // the last acks reach the server
  const after = process.env.STAGES ? stages(await metrics()) : {};
  const lat = Array.from(recvAt, (r, i) => r - sentAt[i]).filter(x => !Number.isNaN(x)).sort((a, b) => a - b);
  const pct = p => lat[Math.max(0, Math.ceil(p / 100 * lat.length) - 1)];
  await sub.close();
  await pubsub.close();
  console.log(JSON.stringify({
    messages: count, received: got, p50_ms: +pct(50).toFixed(3), p99_ms: +pct(99).toFixed(3),
    max_ms: +lat[lat.length - 1].toFixed(3), achieved_rate: +(count / ((publishEnd - start) / 1000)).toFixed(1),
    stages: delta(before, after),
  }));
  process.exit(0);
}
main().catch(e => {
  console.error(e);
  process.exit(1);
});
