// The benchmark's trivial background function on Google's Node.js Functions Framework.
exports.trivial = (message, context) => {};
