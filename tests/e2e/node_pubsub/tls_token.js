// Google's Node.js Pub/Sub client over TLS with a bearer token, as the README's "Run Ferry on a network" shows it,
// run by tests/e2e/network_test.py:
//   FERRY_ADDRESS=localhost:PORT FERRY_CA=cert.pem FERRY_TOKEN=... node tls_token.js NAME
// The credentials are the client's documented `sslCreds` option: TLS trusting Ferry's certificate, combined with
// call credentials that send the token. Exits non-zero on the first failure.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const {PubSub} = require('@google-cloud/pubsub');
const grpc = require('@grpc/grpc-js');

const project = process.env.FERRY_PROJECT || 'net-proj';

function client(token) {
  const tls = grpc.credentials.createSsl(fs.readFileSync(process.env.FERRY_CA));
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    callback(null, metadata);
  });
  return new PubSub({
    projectId: project,
    apiEndpoint: process.env.FERRY_ADDRESS,
    emulatorMode: false,
    sslCreds: grpc.credentials.combineChannelCredentials(tls, bearer),
  });
}

async function expectCode(promise, code) {
  await assert.rejects(promise, e => {
    assert.equal(e.code, code, `expected gRPC code ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

const scenarios = {
  // Admin creates, a publisher publishes, a subscriber receives over StreamingPull; each refused outside its role.
  async roles() {
    const admin = client(process.env.FERRY_ADMIN_TOKEN);
    const [topic] = await admin.createTopic('tls-orders');
    await topic.createSubscription('tls-orders-sub');

    await expectCode(client(null).topic('tls-orders').publishMessage({data: Buffer.from('x')}), 16);  // UNAUTHENTICATED
    await expectCode(client('wrong-token-000000000000').topic('tls-orders').publishMessage({data: Buffer.from('x')}), 16);
    const publisher = client(process.env.FERRY_PUBLISHER_TOKEN);
    await expectCode(publisher.createTopic('tls-not-mine'), 7);  // PERMISSION_DENIED
    const ids = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await publisher.topic('tls-orders').publishMessage({data: Buffer.from(`m${i}`)}));
    }

    const subscriber = client(process.env.FERRY_SUBSCRIBER_TOKEN);
    const subscription = subscriber.subscription('tls-orders-sub');
    const got = await new Promise((resolve, reject) => {
      const seen = [];
      const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length}`)), 20000);
      subscription.on('error', reject);
      subscription.on('message', m => {
        seen.push(m.data.toString());
        m.ack();
        if (seen.length === ids.length) {
          clearTimeout(timer);
          resolve(seen);
        }
      });
    });
    await subscription.close();
    assert.deepEqual([...got].sort(), ['m0', 'm1', 'm2', 'm3', 'm4']);

    // A publisher's stream is refused.
    const refused = publisher.subscription('tls-orders-sub');
    const error = await new Promise(resolve => {
      refused.on('error', resolve);
      refused.on('message', () => resolve(new Error('a publisher received a message')));
    });
    await refused.close().catch(() => {});
    assert.equal(error.code, 7, `expected PERMISSION_DENIED, got ${error.code}: ${error.message}`);
    await Promise.all([admin.close(), publisher.close(), subscriber.close()]);
  },
};

const name = process.argv[2];
scenarios[name]().then(() => console.log(`ok ${name}`), e => {
  console.error(e);
  process.exit(1);
});
