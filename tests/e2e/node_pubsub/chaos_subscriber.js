// Google's Node.js client on StreamingPull for tests/e2e/chaos_test.py: subscribes to an exactly-once
// subscription and keeps subscribing while the daemon is killed and restarted on the same port (the client
// reconnects by itself). Appends one line per event to OUT_FILE: "recv DATA", "acked DATA" once the server
// confirmed the ack, "ackfail DATA CODE" when it did not. Runs until SIGTERM.
//   PUBSUB_EMULATOR_HOST=127.0.0.1:PORT node chaos_subscriber.js PROJECT SUBSCRIPTION OUT_FILE
'use strict';
const fs = require('node:fs');
const {PubSub} = require('@google-cloud/pubsub');

const [project, name, outFile] = process.argv.slice(2);
const out = fs.openSync(outFile, 'a');
const write = line => fs.writeSync(out, line + '\n');

const pubsub = new PubSub({projectId: project});
const subscription = pubsub.subscription(name, {flowControl: {maxMessages: 200}});
subscription.on('message', async m => {
  write(`recv ${m.data.toString()}`);
  try {
    await m.ackWithResponse();
    write(`acked ${m.data.toString()}`);
  } catch (e) {
    write(`ackfail ${m.data.toString()} ${e.errorCode || e.code}`);
  }
});
// A stream the client gave up on (the daemon was down too long): open it again, as a long-running worker would.
subscription.on('error', e => {
  write(`error ${e.code}`);
  setTimeout(() => subscription.open(), 200);
});
process.on('SIGTERM', async () => {
  await subscription.close().catch(() => {});
  process.exit(0);
});
write('started');
