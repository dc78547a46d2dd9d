// The runtimes benchmark's trivial HTTP function on Google's Node.js Functions Framework.
exports.trivialHttp = (req, res) => res.send('ok');
