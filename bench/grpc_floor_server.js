// The floor of the Node.js client's latency: a Pub/Sub server that does nothing but pass messages on, written
// with @grpc/grpc-js in Node (in memory, no store, no fsync, no validation). What Google's Node.js client costs
// against it is the part of publish -> callback no server can remove. Used by bench/latency_bench.sh.
//   PORT=18095 node bench/grpc_floor_server.js
'use strict';
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const modules = process.env.NODE_PATH.split(':')[0];
const def = loader.loadSync('google/pubsub/v1/pubsub.proto', {
  includeDirs: [path.join(modules, '@google-cloud/pubsub/build/protos'), path.join(modules, 'google-gax/build/protos')],
  keepCase: true, longs: Number, defaults: false,
});
const pb = grpc.loadPackageDefinition(def).google.pubsub.v1;

const subsOfTopic = new Map();  // topic -> [subscription]
const streams = new Map();      // subscription -> [call], served round robin
const backlog = new Map();      // subscription -> [ReceivedMessage] published while no stream was open
let nextId = 1;
let turn = 0;

function deliver(sub, received) {
  const open = streams.get(sub) || [];
  if (open.length === 0) return (backlog.get(sub) || backlog.set(sub, []).get(sub)).push(received);
  open[turn++ % open.length].write({received_messages: [received]});
}

const server = new grpc.Server();
server.addService(pb.Publisher.service, {
  CreateTopic: (call, cb) => cb(null, {name: call.request.name}),
  GetTopic: (call, cb) => cb(null, {name: call.request.topic}),
  DeleteTopic: (call, cb) => cb(null, {}),
  Publish: (call, cb) => {
    const ids = [];
    for (const m of call.request.messages) {
      const id = String(nextId++);
      ids.push(id);
      const msg = {...m, message_id: id, publish_time: {seconds: Math.floor(Date.now() / 1000), nanos: 0}};
      for (const sub of subsOfTopic.get(call.request.topic) || []) deliver(sub, {ack_id: `${sub}#${id}`, message: msg});
    }
    cb(null, {message_ids: ids});
  },
});
server.addService(pb.Subscriber.service, {
  CreateSubscription: (call, cb) => {
    const {name, topic} = call.request;
    (subsOfTopic.get(topic) || subsOfTopic.set(topic, []).get(topic)).push(name);
    cb(null, {...call.request, ack_deadline_seconds: call.request.ack_deadline_seconds || 10});
  },
  GetSubscription: (call, cb) => cb(null, {name: call.request.subscription, ack_deadline_seconds: 60}),
  DeleteSubscription: (call, cb) => cb(null, {}),
  Acknowledge: (call, cb) => cb(null, {}),
  ModifyAckDeadline: (call, cb) => cb(null, {}),
  StreamingPull: call => {
    let sub;
    call.on('data', req => {
      if (sub || !req.subscription) return;
      sub = req.subscription;
      (streams.get(sub) || streams.set(sub, []).get(sub)).push(call);
      for (const r of backlog.get(sub) || []) call.write({received_messages: [r]});
      backlog.delete(sub);
    });
    const end = () => {
      if (!sub) return;
      streams.set(sub, (streams.get(sub) || []).filter(c => c !== call));
      sub = undefined;
      call.end();
    };
    call.on('end', end);
    call.on('cancelled', end);
    call.on('error', end);
  },
});
server.bindAsync(`127.0.0.1:${process.env.PORT || 18095}`, grpc.ServerCredentials.createInsecure(), err => {
  if (err) throw err;
  console.error('floor server listening');
});
