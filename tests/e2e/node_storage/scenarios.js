// Google's Node.js Cloud Storage client against Ferry's buckets: node scenarios.js ENDPOINT BUCKET
// Prints one JSON object with what each call returned; tests/e2e/storage_test.py checks it.
'use strict';
const {Storage} = require('@google-cloud/storage');

async function main() {
  const [endpoint, bucketName] = process.argv.slice(2);
  const storage = new Storage({apiEndpoint: endpoint, projectId: 'st'});
  const bucket = storage.bucket(bucketName);
  const out = {};

  [out.bucketExists] = await bucket.exists();
  const [bucketMeta] = await bucket.getMetadata();
  out.bucketName = bucketMeta.name;

  // Small: a multipart upload with content type and custom metadata.
  const small = bucket.file('node/small.txt');
  await small.save('hello from node', {resumable: false, contentType: 'text/plain',
                                       metadata: {metadata: {color: 'blue'}}});
  // Large: a resumable upload in 256 KiB chunks (the client checks the hashes Ferry answers).
  const big = Buffer.alloc(600 * 1024);
  for (let i = 0; i < big.length; ++i) big[i] = (i * 7) % 251;
  await bucket.file('node/big.bin').save(big, {resumable: true, chunkSize: 256 * 1024,
                                               contentType: 'application/octet-stream'});

  const [smallMeta] = await small.getMetadata();
  out.small = {contentType: smallMeta.contentType, metadata: smallMeta.metadata, size: smallMeta.size,
               md5Hash: smallMeta.md5Hash, crc32c: smallMeta.crc32c};
  const [smallBytes] = await small.download();
  out.smallText = smallBytes.toString();
  const [bigBytes] = await bucket.file('node/big.bin').download();
  out.bigSame = Buffer.compare(bigBytes, big) === 0;

  const [files, , listed] = await bucket.getFiles({prefix: 'node/', autoPaginate: false});
  out.names = files.map(f => f.name).sort();
  const [, , rolled] = await bucket.getFiles({delimiter: '/', autoPaginate: false});
  out.prefixes = (rolled && rolled.prefixes) || [];
  void listed;

  await small.setMetadata({metadata: {size: 'L'}});
  const [patched] = await small.getMetadata();
  out.patchedMetadata = patched.metadata;

  await small.delete();
  [out.smallExistsAfterDelete] = await small.exists();
  console.log(JSON.stringify(out));
}

main().catch(err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
