// A Pub/Sub background function as Google's Node.js Functions Framework runs it: (message, context).
exports.helloPubSub = (message, context) => {
  const data = message.data ? Buffer.from(message.data, 'base64').toString() : '';
  console.log(JSON.stringify({
    severity: 'INFO',
    message: `node got data=${data} attributes=${JSON.stringify(message.attributes || {})} ` +
        `eventId=${context.eventId} eventType=${context.eventType} resource=${JSON.stringify(context.resource)}`,
  }));
  if (message.attributes && message.attributes.fail === 'yes') {
    throw new Error('node function failed as asked');
  }
};

// An HTTP function: echoes what it was sent.
exports.helloHttp = (req, res) => {
  res.status(201).set('X-Echo', String(req.query.x || '')).json({
    method: req.method, path: req.path, body: req.body, runtime: 'node',
  });
};
