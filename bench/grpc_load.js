// The 100,000-message workload through Google's Node.js client over gRPC (run by bench/grpc_bench.sh):
// publish MESSAGES messages of 100 bytes, then receive and ack them all with StreamingPull. Prints JSON rates.
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT node bench/grpc_load.js
'use strict';
const {PubSub} = require('@google-cloud/pubsub');

const messages = Number(process.env.MESSAGES || 100000);
const tag = process.env.TAG || 'load';
const pubsub = new PubSub({projectId: 'bench'});

async function main() {
  const [topic] = await pubsub.createTopic(`${tag}-topic`);
  await topic.createSubscription(`${tag}-sub`, {ackDeadlineSeconds: 60});
  const publisher = pubsub.topic(`${tag}-topic`, {batching: {maxMessages: 1000, maxMilliseconds: 10}});
  const payload = Buffer.alloc(100, 'x');

  let t0 = process.hrtime.bigint();
  const pending = [];
  for (let i = 0; i < messages; i++) {
    pending.push(publisher.publishMessage({data: payload}));
    if (pending.length >= 10000) await Promise.all(pending.splice(0));  // bounds the client's memory
  }
  await Promise.all(pending);
  const publishSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  t0 = process.hrtime.bigint();
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
  await sub.close();
  await pubsub.close();
  console.log(JSON.stringify({
    messages,
    publish_msgs_per_s: messages / publishSeconds,
    receive_msgs_per_s: messages / receiveSeconds,
    end_to_end_msgs_per_s: messages / (publishSeconds + receiveSeconds),
  }));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
