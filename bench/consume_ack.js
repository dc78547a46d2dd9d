// Consume+ack through Google's Node.js client (run by bench/consume_ack_cpu.sh): publishes MESSAGES messages of
// 100 bytes with an attribute, prints "published", waits for a line on stdin, then receives and acks them all on
// one StreamingPull subscriber (flow control 2,000 messages, as the peers bench's B), closes it (which sends the
// acks the client still batches) and prints "consumed N in MS ms".
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT node bench/consume_ack.js
'use strict';
const {PubSub} = require('@google-cloud/pubsub');
const readline = require('node:readline');

process.env.METADATA_SERVER_DETECTION = 'none';  // loopback only: no probing for GCE's metadata server
const messages = Number(process.env.MESSAGES || 100000);
const pubsub = new PubSub({projectId: 'bench'});

async function main() {
  const tag = `consume-${process.pid}`;
  const [topic] = await pubsub.createTopic(tag);
  await topic.createSubscription(`${tag}-sub`);
  const publisher = pubsub.topic(tag, {batching: {maxMessages: 1000, maxMilliseconds: 10}});
  const payload = Buffer.alloc(100, 'x');
  const pending = [];
  for (let i = 0; i < messages; i++) {
    pending.push(publisher.publishMessage({data: payload, attributes: {attr: 'value'}}));
    if (pending.length >= 1000) await Promise.all(pending.splice(0));  // bounds the client's memory
  }
  await Promise.all(pending);
  console.log('published');
  await new Promise(resolve => readline.createInterface({input: process.stdin}).once('line', resolve));

  const t0 = Date.now();
  const subscription = pubsub.subscription(`${tag}-sub`, {flowControl: {maxMessages: 2000}});
  let seen = 0;
  await new Promise((resolve, reject) => {
    subscription.on('error', reject);
    subscription.on('message', m => {
      m.ack();
      if (++seen === messages) resolve();
    });
  });
  await subscription.close();
  console.log(`consumed ${messages} in ${Date.now() - t0} ms`);
  await pubsub.subscription(`${tag}-sub`).delete();
  await topic.delete();
}

main().then(() => process.exit(0), e => {
  console.error(e);
  process.exit(1);
});
