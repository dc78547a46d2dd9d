// Scenarios for Google's Node.js Pub/Sub client against Ferry, run by tests/e2e/node_pubsub_test.py:
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT node scenarios.js NAME
// Each asserts what Google documents and exits non-zero on the first failure. REST calls go to the same port.
'use strict';
const assert = require('node:assert/strict');
const {PubSub, v1} = require('@google-cloud/pubsub');

const project = process.env.FERRY_PROJECT || 'node-proj';
const host = process.env.PUBSUB_EMULATOR_HOST;
const pubsub = new PubSub({projectId: project});

// Collects messages from a streaming subscription until `done(received)` says so or the time runs out.
function receive(subscription, onMessage, done, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const received = [];
    const timer = setTimeout(() => finish(new Error(`timed out with ${received.length} messages`)), timeoutMs);
    const finish = async err => {
      clearTimeout(timer);
      subscription.removeAllListeners('message');
      await subscription.close();
      err ? reject(err) : resolve(received);
    };
    subscription.on('error', finish);
    subscription.on('message', async m => {
      received.push(m);
      try {
        await onMessage(m, received);
      } catch (e) {
        return finish(e);
      }
      if (done(received)) finish();
    });
  });
}

async function rest(method, path, body) {
  const res = await fetch(`http://${host}/v1/${path}`, {
    method,
    headers: {'content-type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const scenarios = {
  // Batched publishing, StreamingPull with flow control, acks; a REST publish arrives over gRPC and the reverse.
  async publish_and_subscribe() {
    const [topic] = await pubsub.createTopic('orders');
    const [sub] = await topic.createSubscription('orders-worker');
    const publisher = pubsub.topic('orders', {batching: {maxMessages: 50, maxMilliseconds: 20}});
    const sent = await Promise.all(
      Array.from({length: 500}, (_, i) => publisher.publishMessage({data: Buffer.from(`order-${i}`), attributes: {i: `${i}`}})));
    assert.equal(new Set(sent).size, 500);
    const restIds = (await rest('POST', `projects/${project}/topics/orders:publish`, {
      messages: [{data: Buffer.from('from-rest').toString('base64'), attributes: {via: 'rest'}}],
    })).messageIds;

    let outstanding = 0, peak = 0;
    const flow = pubsub.subscription('orders-worker', {flowControl: {maxMessages: 20, allowExcessMessages: false}});
    const got = await receive(flow, async m => {
      peak = Math.max(peak, ++outstanding);
      await new Promise(r => setTimeout(r, 2));
      outstanding--;
      m.ack();
    }, r => new Set(r.map(m => m.id)).size === 501);
    const byId = new Map(got.map(m => [m.id, m]));
    for (const id of sent) assert.ok(byId.has(id), `message ${id} not received`);
    assert.equal(byId.get(restIds[0]).data.toString(), 'from-rest');
    assert.equal(byId.get(restIds[0]).attributes.via, 'rest');
    assert.equal(byId.get(sent[7]).attributes.i, '7');
    assert.ok(peak <= 20, `flow control let ${peak} messages out at once`);

    // Everything acked: a REST pull finds nothing. A gRPC publish is pulled over REST.
    await new Promise(r => setTimeout(r, 300));  // the client sends acks in batches
    assert.deepEqual(await rest('POST', `projects/${project}/subscriptions/orders-worker:pull`,
                                {maxMessages: 10, returnImmediately: true}), {});
    const id = await topic.publishMessage({data: Buffer.from('from-grpc')});
    const pulled = await rest('POST', `projects/${project}/subscriptions/orders-worker:pull`, {maxMessages: 10});
    assert.equal(pulled.receivedMessages[0].message.messageId, id);
    assert.equal(Buffer.from(pulled.receivedMessages[0].message.data, 'base64').toString(), 'from-grpc');
    await sub.delete();
  },

  // Nacks are redelivered with growing deliveryAttempt, then dead-lettered with Pub/Sub's attributes.
  async nack_dead_letter() {
    const [topic] = await pubsub.createTopic('jobs');
    const [dlt] = await pubsub.createTopic('jobs-failed');
    const [dltSub] = await dlt.createSubscription('jobs-failed-sub');
    const [sub] = await topic.createSubscription('jobs-worker', {
      deadLetterPolicy: {deadLetterTopic: dlt.name, maxDeliveryAttempts: 5},
    });
    const id = await topic.publishMessage({data: Buffer.from('poison')});
    const attempts = [];
    await receive(sub, m => {
      attempts.push(m.deliveryAttempt);
      m.nack();
    }, r => r.length === 5);
    assert.deepEqual(attempts, [1, 2, 3, 4, 5]);
    const dead = await receive(dltSub, m => m.ack(), r => r.length === 1);
    assert.equal(dead[0].data.toString(), 'poison');
    assert.equal(dead[0].attributes.CloudPubSubDeadLetterSourceDeliveryCount, '5');
    assert.equal(dead[0].attributes.CloudPubSubDeadLetterSourceSubscription, 'jobs-worker');
    assert.notEqual(dead[0].id, id);
  },

  // Close a subscriber, publish, open a new one on the same subscription in the same process (issue 12): the
  // message reaches the new one within a second as its first delivery attempt, and five nacks give attempts 1 to 5
  // and then the dead-letter topic. The closed subscriber's streams get nothing, and count no attempt.
  async reopen() {
    const [topic] = await pubsub.createTopic('reopen');
    const [dlt] = await pubsub.createTopic('reopen-failed');
    const [dltSub] = await dlt.createSubscription('reopen-failed-sub');
    const [sub] = await topic.createSubscription('reopen-worker', {
      deadLetterPolicy: {deadLetterTopic: dlt.name, maxDeliveryAttempts: 5},
    });
    // The subscriber receives and acks one message, then waits with its streams open, then closes; the same
    // subscription object is opened again afterwards.
    await topic.publishMessage({data: Buffer.from('before close')});
    await receive(sub, m => m.ack(), r => r.length === 1);
    sub.on('message', m => m.nack());
    await new Promise(resolve => setTimeout(resolve, 1500));  // its streams are open and waiting
    sub.removeAllListeners('message');
    await sub.close();
    const published = Date.now();
    await topic.publishMessage({data: Buffer.from('after close')});
    const attempts = [];
    let firstAt = 0;
    await receive(sub, m => {
      if (attempts.length === 0) firstAt = Date.now();
      attempts.push(m.deliveryAttempt);
      m.nack();
    }, r => r.length === 5);
    assert.ok(firstAt - published < 1000, `the reopened subscriber waited ${firstAt - published} ms`);
    assert.deepEqual(attempts, [1, 2, 3, 4, 5]);
    const dead = await receive(dltSub, m => m.ack(), r => r.length === 1);
    assert.equal(dead[0].data.toString(), 'after close');
  },

  // Messages with the same ordering key arrive in publish order; a nack holds its key back.
  async ordering_keys() {
    const [topic] = await pubsub.createTopic('ledger');
    const [sub] = await topic.createSubscription('ledger-worker', {enableMessageOrdering: true});
    const [meta] = await sub.getMetadata();
    assert.equal(meta.enableMessageOrdering, true);
    const publisher = pubsub.topic('ledger', {messageOrdering: true, batching: {maxMessages: 10, maxMilliseconds: 5}});
    const keys = ['acct-1', 'acct-2', 'acct-3'];
    const sends = [];
    for (let i = 0; i < 40; i++) {
      for (const key of keys) sends.push(publisher.publishMessage({data: Buffer.from(`${i}`), orderingKey: key}));
    }
    await Promise.all(sends);
    const seen = new Map(keys.map(k => [k, []]));
    await receive(sub, m => {
      seen.get(m.orderingKey).push(Number(m.data.toString()));
      m.ack();
    }, () => keys.every(k => seen.get(k).length === 40));
    for (const key of keys) assert.deepEqual(seen.get(key), Array.from({length: 40}, (_, i) => i), key);

    // A nacked message comes again before anything published to its key after it.
    await publisher.publishMessage({data: Buffer.from('first'), orderingKey: 'acct-9'});
    const order = [];
    await receive(pubsub.subscription('ledger-worker'), async m => {
      order.push(m.data.toString());
      if (order.length === 1) {
        await m.nackWithResponse();
        await publisher.publishMessage({data: Buffer.from('second'), orderingKey: 'acct-9'});
      } else {
        m.ack();
      }
    }, r => r.length === 3);
    assert.deepEqual(order, ['first', 'first', 'second']);
  },

  // Exactly-once: acks answer success; an ack on a lease that is no longer current fails permanently.
  async exactly_once() {
    const [topic] = await pubsub.createTopic('payments');
    const [sub] = await topic.createSubscription('payments-worker', {enableExactlyOnceDelivery: true});
    await topic.publishMessage({data: Buffer.from('pay-1')});
    const responses = [];
    await receive(sub, async m => responses.push(await m.ackWithResponse()), r => r.length === 1);
    assert.deepEqual(responses, ['SUCCESS']);

    await topic.publishMessage({data: Buffer.from('pay-2')});
    const [hostname, port] = host.split(':');
    const client = new v1.SubscriberClient({
      servicePath: hostname, port: Number(port), sslCreds: require('google-gax').grpc.credentials.createInsecure(),
    });
    const [pulled] = await client.pull({subscription: sub.name, maxMessages: 1});
    const ackId = pulled.receivedMessages[0].ackId;
    await client.modifyAckDeadline({subscription: sub.name, ackIds: [ackId], ackDeadlineSeconds: 0});
    await assert.rejects(client.acknowledge({subscription: sub.name, ackIds: [ackId]}), err => {
      assert.equal(err.code, 3);  // INVALID_ARGUMENT
      assert.equal(err.errorInfoMetadata[ackId], 'PERMANENT_FAILURE_INVALID_ACK_ID');
      return true;
    });
    // The nacked message comes again under a new ack id, which works once.
    const [again] = await client.pull({subscription: sub.name, maxMessages: 1});
    assert.equal(again.receivedMessages[0].message.data.toString(), 'pay-2');
    await client.acknowledge({subscription: sub.name, ackIds: [again.receivedMessages[0].ackId]});
    const [empty] = await client.pull({subscription: sub.name, maxMessages: 1, returnImmediately: true});
    assert.equal(empty.receivedMessages.length, 0);
    await client.close();
  },

  // A filter delivers only matching messages; a bad filter is INVALID_ARGUMENT at creation.
  async filters() {
    const [topic] = await pubsub.createTopic('events');
    const [sub] = await topic.createSubscription('events-eu', {
      filter: 'attributes.region = "eu" AND NOT hasPrefix(attributes.kind, "debug")',
    });
    await Promise.all([
      topic.publishMessage({data: Buffer.from('1'), attributes: {region: 'eu', kind: 'order'}}),
      topic.publishMessage({data: Buffer.from('2'), attributes: {region: 'us', kind: 'order'}}),
      topic.publishMessage({data: Buffer.from('3'), attributes: {region: 'eu', kind: 'debug-trace'}}),
      topic.publishMessage({data: Buffer.from('4'), attributes: {region: 'eu'}}),
    ]);
    const got = await receive(sub, m => m.ack(), r => r.length === 2);
    await new Promise(r => setTimeout(r, 500));
    assert.deepEqual(got.map(m => m.data.toString()).sort(), ['1', '4']);
    await assert.rejects(topic.createSubscription('events-bad', {filter: 'attributes.region = eu'}),
                         err => err.code === 3);
  },

  // Snapshots and seek through the client: replay what was acknowledged.
  async seek() {
    const [topic] = await pubsub.createTopic('audit');
    const [sub] = await topic.createSubscription('audit-replay', {retainAckedMessages: true});
    await topic.publishMessage({data: Buffer.from('a')});
    const [snapshot] = await sub.createSnapshot('audit-snap');
    assert.equal(snapshot.name, `projects/${project}/snapshots/audit-snap`);
    await topic.publishMessage({data: Buffer.from('b')});
    const drain = async n => (await receive(pubsub.subscription('audit-replay'), m => m.ack(), r => r.length === n))
      .map(m => m.data.toString()).sort();
    assert.deepEqual(await drain(2), ['a', 'b']);
    await sub.seek('audit-snap');
    assert.deepEqual(await drain(2), ['a', 'b']);
    await sub.seek(new Date(Date.now() + 3600 * 1000));  // forward past everything
    await sub.seek(new Date(0));                          // and back to the beginning
    assert.deepEqual(await drain(2), ['a', 'b']);
    const [snapshots] = await pubsub.getSnapshots();
    assert.deepEqual(snapshots.map(s => s.name), [`projects/${project}/snapshots/audit-snap`]);
    await snapshot.delete();
  },

  // Publishes continuously and receives on a stream, printing each id as its publish or delivery succeeds; the
  // crash test kills the daemon under it.
  async crash_load() {
    const topic = pubsub.topic('crash', {batching: {maxMessages: 20, maxMilliseconds: 5}});
    const sub = pubsub.subscription('crash-sub', {flowControl: {maxMessages: 200}});
    sub.on('message', m => {
      process.stdout.write(`received ${m.id}\n`);
      m.ack();
    });
    sub.on('error', () => {});
    for (let i = 0; ; i++) {
      const batch = Array.from({length: 20}, (_, j) => topic.publishMessage({data: Buffer.from(`${i}-${j}`)})
        .then(id => process.stdout.write(`published ${id}\n`), () => {}));
      await Promise.all(batch);
    }
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
scenarios[name]().then(async () => {
  await pubsub.close();
  console.log(`ok ${name}`);
  process.exit(0);
}, err => {
  console.error(err);
  process.exit(1);
});
