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
