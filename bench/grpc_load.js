// The 100,000-message workload through Google's Node.js client over gRPC (run by bench/grpc_bench.sh):
// publish MESSAGES messages of 100 bytes, then receive and ack them all with StreamingPull. Prints JSON rates.
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT node bench/grpc_load.js
'use strict';
const {PubSub} = require('@google-cloud/pubsub');

const messages = Number(process.env.MESSAGES || 100000);
const tag = process.env.TAG || 'load';
// With FERRY_CA (and FERRY_ADDRESS, FERRY_TOKEN): over TLS with a bearer token, as README's "Run Ferry on a network"
// shows; else PUBSUB_EMULATOR_HOST's plaintext.
function makeClient() {
  if (!process.env.FERRY_CA) return new PubSub({projectId: 'bench'});
  const fs = require('node:fs');
  const grpc = require('@grpc/grpc-js');
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${process.env.FERRY_TOKEN}`);
    callback(null, metadata);
  });
  const sslCreds = grpc.credentials.combineChannelCredentials(
      grpc.credentials.createSsl(fs.readFileSync(process.env.FERRY_CA)), bearer);
  return new PubSub({projectId: 'bench', apiEndpoint: process.env.FERRY_ADDRESS, emulatorMode: false, sslCreds});
}
const pubsub = makeClient();

async function main() {
  const [topic] = await pubsub.createTopic(`${tag}-topic`);
  await topic.createSubscription(`${tag}-sub`, {ackDeadlineSeconds: 60});
  const publisher = pubsub.topic(`${tag}-topic`, {batching: {maxMessages: 1000, maxMilliseconds: 10}});
  const payload = Buffer.alloc(100, 'x');

  let t0 = process.hrtime.bigint();
  let cpu0 = process.cpuUsage();
  const pending = [];
  for (let i = 0; i < messages; i++) {
    pending.push(publisher.publishMessage({data: payload}));
    if (pending.length >= 10000) await Promise.all(pending.splice(0));  // bounds the client's memory
  }
  await Promise.all(pending);
  const publishSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuSeconds = u => (u.user + u.system) / 1e6;
  const publishCpu = cpuSeconds(process.cpuUsage(cpu0)) / publishSeconds;

  t0 = process.hrtime.bigint();
  cpu0 = process.cpuUsage();
  const sub = pubsub.subscription(`${tag}-sub`, {flowControl: {maxMessages: 2000}, batching: {maxMessages: 2000}});
  const seen = new Set();
  await new Promise((resolve, reject) => {
    sub.on('error', reject);
    sub.on('message', m => {
      m.ack();
      seen.add(m.id);
      if (seen.size === messages) resolve();
    });
  });
  const receiveSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const receiveCpu = cpuSeconds(process.cpuUsage(cpu0)) / receiveSeconds;
  await sub.close();
  await pubsub.close();
  console.log(JSON.stringify({
    messages,
    publish_msgs_per_s: messages / publishSeconds,
    receive_msgs_per_s: messages / receiveSeconds,
    end_to_end_msgs_per_s: messages / (publishSeconds + receiveSeconds),
    // The client's own CPU use (cores busy) in each phase: near 1.0 means the single-threaded client is the limit.
    publish_client_cores: publishCpu,
    receive_client_cores: receiveCpu,
  }));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
