// Google's Node.js Cloud Storage client over TLS with a bearer token, run by tests/e2e/network_test.py:
//   NODE_EXTRA_CA_CERTS=cert.pem FERRY_ENDPOINT=https://localhost:PORT FERRY_TOKEN=... node tls_token.js
// The token goes through the client's documented `authClient` option (an OAuth2Client holding it).
'use strict';
const assert = require('node:assert/strict');
const {Storage} = require('@google-cloud/storage');
const {OAuth2Client} = require('google-auth-library');

function storage(token) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({access_token: token});
  // useAuthWithCustomEndpoint: the client sends no credentials to an endpoint that is not Google's otherwise.
  return new Storage({apiEndpoint: process.env.FERRY_ENDPOINT, projectId: 'net-proj', authClient,
                      useAuthWithCustomEndpoint: true});
}

async function main() {
  const writer = storage(process.env.FERRY_PUBLISHER_TOKEN);
  await writer.bucket('netb').file('tls/hello.txt').save('hello over tls\n', {resumable: false});
  const reader = storage(process.env.FERRY_SUBSCRIBER_TOKEN);
  const [bytes] = await reader.bucket('netb').file('tls/hello.txt').download();
  assert.equal(bytes.toString(), 'hello over tls\n');
  const [files] = await reader.bucket('netb').getFiles({prefix: 'tls/'});
  assert.deepEqual(files.map(f => f.name), ['tls/hello.txt']);
  // A reader may not write, and no token is no access.
  await assert.rejects(reader.bucket('netb').file('tls/no.txt').save('x', {resumable: false}), e => e.code === 403);
  await assert.rejects(storage('wrong-token-00000000000000').bucket('netb').file('tls/hello.txt').download(),
                       e => e.code === 401);
  console.log('ok storage');
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
