"""Buckets against the real daemon: objects uploaded through Cloud Storage's JSON API, written straight into the
bucket's directory, overwritten and deleted each raise the right event once, with Cloud Storage's fields (md5 and
crc32c of the bytes); a failing storage-triggered function is retried and dead-lettered."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def gcs_hashes(data):
    return (base64.b64encode(hashlib.md5(data).digest()).decode(),
            base64.b64encode(crc32c(data).to_bytes(4, "big")).decode())


class EventsMixin:
    """The storage events a test function logged (python_function's on_object: one "storage event {json}" line
    each), read back through the daemon's admin API."""

    def events(self, fn, name=None):
        events = [json.loads(m[len("storage event "):]) for m in self.daemon.log_messages(fn)
                  if m.startswith("storage event ")]
        return [e for e in events if name is None or e["object"]["name"] == name]

    def wait_events(self, fn, name, n, timeout=30):
        """The events of object `name` once there are n, and no more than n after a moment."""
        harness.wait_for(lambda: len(self.events(fn, name)) >= n, timeout=timeout,
                         what="%d events of %s for %s" % (n, name, fn))
        time.sleep(0.5)
        got = self.events(fn, name)
        self.assertEqual(len(got), n, got)
        return got


class StorageTest(EventsMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(project="st").start()
        cls.work = tempfile.mkdtemp(prefix="ferry-storage-")
        cls.uploads = os.path.join(cls.work, "uploads")
        deploy = os.path.join(cls.work, "ferry.yaml")
        with open(deploy, "w") as f:
            f.write(textwrap.dedent("""\
                project: st
                topics: [failed-objects]
                buckets:
                  - {name: uploads, path: ./uploads}
                  - {name: broken-inbox, path: ./broken}
                functions:
                  - name: on-finalize
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: on_object
                    event_trigger_type: google.storage.object.finalize
                    event_trigger_resource: uploads
                  - name: on-delete
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: on_object
                    event_trigger_type: google.storage.object.delete
                    event_trigger_resource: projects/_/buckets/uploads
                  - name: on-broken
                    runtime: python3
                    source_dir: %(py)s
                    entry_point: on_object_fails
                    event_trigger_type: google.storage.object.finalize
                    event_trigger_resource: broken-inbox
                    event_trigger_retry: true
                    dead_letter_topic: failed-objects
                    max_delivery_attempts: 5
                    min_retry_delay: 0s
                    max_retry_delay: 0s
                """ % {"py": json.dumps(os.path.join(HERE, "python_function"))}))
        cls.daemon.deploy(deploy)
        cls.client = cls.daemon.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def http(self, method, path, body=None, headers=None):
        status, _, body = harness.http_request(self.daemon.port, method, path, body, headers)
        return status, body

    def test_upload_through_the_api_raises_finalize_with_the_objects_fields(self):
        data = b'{"order": 42}'
        status, body = self.http("POST", "/upload/storage/v1/b/uploads/o?uploadType=media&name=orders/42.json",
                                 body=data, headers={"content-type": "application/json"})
        self.assertEqual(status, 200, body)
        uploaded = json.loads(body)
        md5, crc = gcs_hashes(data)
        self.assertEqual((uploaded["md5Hash"], uploaded["crc32c"], uploaded["size"]), (md5, crc, str(len(data))))
        [event] = self.wait_events("on-finalize", "orders/42.json", 1)
        self.assertEqual(event["event_type"], "google.storage.object.finalize")
        self.assertEqual(event["resource"], {"name": "projects/_/buckets/uploads/objects/orders/42.json",
                                             "service": "storage.googleapis.com", "type": "storage#object"})
        obj = event["object"]
        self.assertEqual(obj["bucket"], "uploads")
        self.assertEqual(obj["contentType"], "application/json")
        self.assertEqual((obj["md5Hash"], obj["crc32c"], obj["size"]), (md5, crc, str(len(data))))
        self.assertEqual(obj["generation"], uploaded["generation"])
        self.assertTrue(obj["timeCreated"].endswith("Z") and obj["updated"].endswith("Z"))
        # Read back: metadata, bytes, listing.
        status, body = self.http("GET", "/storage/v1/b/uploads/o/orders%2F42.json")
        self.assertEqual((status, json.loads(body)["md5Hash"]), (200, md5))
        status, body = self.http("GET", "/storage/v1/b/uploads/o/orders%2F42.json?alt=media")
        self.assertEqual((status, body), (200, data))
        status, body = self.http("GET", "/storage/v1/b/uploads/o?prefix=orders/")
        self.assertEqual([o["name"] for o in json.loads(body)["items"]], ["orders/42.json"])

    def test_direct_write_overwrite_and_delete_each_raise_their_event_once(self):
        path = os.path.join(self.uploads, "direct.txt")
        first = b"first version"
        with open(path, "wb") as f:
            f.write(first)
        [event] = self.wait_events("on-finalize", "direct.txt", 1)
        md5, crc = gcs_hashes(first)
        self.assertEqual((event["object"]["md5Hash"], event["object"]["crc32c"]), (md5, crc))
        old_generation = event["object"]["generation"]

        # Overwrite: finalize of the new generation, delete of the old one (Cloud Storage, no versioning).
        time.sleep(0.01)
        tmp = os.path.join(self.work, "staged")
        with open(tmp, "wb") as f:
            f.write(b"second version")
        os.rename(tmp, path)
        finals = self.wait_events("on-finalize", "direct.txt", 2)
        self.assertEqual(len(finals), 2)
        self.assertNotEqual(finals[1]["object"]["generation"], old_generation)
        [deleted] = self.wait_events("on-delete", "direct.txt", 1)
        self.assertEqual(deleted["object"]["generation"], old_generation)

        # Delete through the API.
        status, _ = self.http("DELETE", "/storage/v1/b/uploads/o/direct.txt")
        self.assertEqual(status, 204)
        deletes = self.wait_events("on-delete", "direct.txt", 2)
        self.assertEqual(len(deletes), 2)
        self.assertEqual(deletes[1]["event_type"], "google.storage.object.delete")
        self.assertEqual(len(self.wait_events("on-finalize", "direct.txt", 2)), 2)
        status, _ = self.http("GET", "/storage/v1/b/uploads/o/direct.txt")
        self.assertEqual(status, 404)

    def test_failing_storage_function_is_retried_then_dead_lettered(self):
        self.client.create_subscription("failed-objects-sub", "failed-objects")
        status, _ = self.http("POST", "/upload/storage/v1/b/broken-inbox/o?uploadType=media&name=bad.bin",
                              body=b"\x00\x01")
        self.assertEqual(status, 200)
        deadline = time.time() + 60
        dead = []
        while not dead and time.time() < deadline:
            dead = self.client.pull("failed-objects-sub", immediately=False)
        self.assertEqual(len(dead), 1)
        attributes = dead[0]["message"]["attributes"]
        self.assertEqual(attributes["eventType"], "google.storage.object.finalize")
        self.assertEqual(attributes["objectId"], "bad.bin")
        self.assertEqual(attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5")
        self.assertIn("cannot process bad.bin", attributes["FerryLastError"])

    def test_ferry_cp_uploads_and_downloads(self):
        src = os.path.join(self.work, "report.csv")
        with open(src, "w") as f:
            f.write("a,b\n1,2\n")
        env = dict(os.environ, FERRY_ENDPOINT=self.daemon.endpoint)
        subprocess.run([harness.FERRY, "cp", src, "gs://uploads/reports/report.csv"], env=env, check=True,
                       capture_output=True, timeout=60)
        [event] = self.wait_events("on-finalize", "reports/report.csv", 1)
        self.assertEqual(event["object"]["contentType"], "text/csv")
        back = os.path.join(self.work, "back.csv")
        subprocess.run([harness.FERRY, "cp", "gs://uploads/reports/report.csv", back], env=env, check=True,
                       capture_output=True, timeout=60)
        with open(back) as f:
            self.assertEqual(f.read(), "a,b\n1,2\n")
        proc = subprocess.run([harness.FERRY, "cp", "gs://uploads/missing.txt", back], env=env, capture_output=True,
                              text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no object", proc.stderr)

    def test_google_node_client_uploads_downloads_lists_patches_and_deletes(self):
        proc = subprocess.run(["node", os.path.join(HERE, "node_storage", "scenarios.js"), self.daemon.endpoint,
                               "uploads"], capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = json.loads(proc.stdout)
        self.assertTrue(out["bucketExists"])
        self.assertEqual(out["bucketName"], "uploads")
        md5, crc = gcs_hashes(b"hello from node")
        self.assertEqual(out["small"], {"contentType": "text/plain", "metadata": {"color": "blue"}, "size": "15",
                                        "md5Hash": md5, "crc32c": crc})
        self.assertEqual(out["smallText"], "hello from node")
        self.assertTrue(out["bigSame"])
        self.assertEqual(out["names"], ["node/big.bin", "node/small.txt"])
        self.assertIn("node/", out["prefixes"])
        self.assertEqual(out["patchedMetadata"], {"color": "blue", "size": "L"})
        self.assertFalse(out["smallExistsAfterDelete"])
        # The resumable upload raised one finalize, for the whole object.
        big = bytes((i * 7) % 251 for i in range(600 * 1024))
        [event] = self.wait_events("on-finalize", "node/big.bin", 1)
        self.assertEqual((event["object"]["md5Hash"], event["object"]["crc32c"]), gcs_hashes(big))
        self.assertEqual(event["object"]["size"], str(len(big)))

    def test_gcloud_storage_copies_lists_reads_and_removes(self):
        config = tempfile.mkdtemp(prefix="ferry-gcloud-", dir=self.work)
        env = dict(os.environ, CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=self.daemon.endpoint + "/storage/v1/",
                   CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true", CLOUDSDK_CONFIG=config, CLOUDSDK_CORE_PROJECT="st",
                   CLOUDSDK_CORE_DISABLE_PROMPTS="1", CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
                   CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true")

        def gcloud(*args):
            proc = subprocess.run(["gcloud", "storage"] + list(args), env=env, capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return proc.stdout

        small = os.path.join(self.work, "gcloud-small.txt")
        with open(small, "wb") as f:
            f.write(b"from gcloud storage\n")
        big = os.path.join(self.work, "gcloud-big.bin")
        big_bytes = bytes((i * 13) % 253 for i in range(9 * 1024 * 1024))  # past gcloud's resumable threshold
        with open(big, "wb") as f:
            f.write(big_bytes)
        gcloud("cp", small, "gs://uploads/gcloud/small.txt")  # a multipart upload
        gcloud("cp", big, "gs://uploads/gcloud/big.bin")      # a resumable one
        [event] = self.wait_events("on-finalize", "gcloud/small.txt", 1)
        self.assertEqual(event["object"]["md5Hash"], gcs_hashes(b"from gcloud storage\n")[0])
        [event] = self.wait_events("on-finalize", "gcloud/big.bin", 1)
        self.assertEqual(event["object"]["size"], str(len(big_bytes)))
        listed = gcloud("ls", "gs://uploads/gcloud/")
        self.assertIn("gs://uploads/gcloud/small.txt", listed)
        self.assertIn("gs://uploads/gcloud/big.bin", listed)
        self.assertEqual(gcloud("cat", "gs://uploads/gcloud/small.txt"), "from gcloud storage\n")
        back = os.path.join(self.work, "gcloud-back.bin")
        gcloud("cp", "gs://uploads/gcloud/big.bin", back)
        with open(back, "rb") as f:
            self.assertEqual(f.read(), big_bytes)
        gcloud("rm", "gs://uploads/gcloud/small.txt")
        [event] = self.wait_events("on-delete", "gcloud/small.txt", 1)
        self.assertEqual(event["event_type"], "google.storage.object.delete")

    def test_resumable_upload_in_chunks_and_multipart_upload(self):
        status, headers, _ = harness.http_request(
            self.daemon.port, "POST", "/upload/storage/v1/b/uploads/o?uploadType=resumable",
            json.dumps({"name": "chunks.txt", "contentType": "text/plain"}).encode(),
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        location = headers["location"]
        self.assertIn("upload_id=", location)
        path = location[location.index("/upload/"):]
        status, headers, _ = harness.http_request(self.daemon.port, "PUT", path, b"01234",
                                                  {"Content-Range": "bytes 0-4/10"})
        self.assertEqual((status, headers.get("range")), (308, "bytes=0-4"))
        status, headers, _ = harness.http_request(self.daemon.port, "PUT", path, b"", {"Content-Range": "bytes */10"})
        self.assertEqual((status, headers.get("range")), (308, "bytes=0-4"))
        self.assertEqual(self.events("on-finalize", "chunks.txt"), [])
        status, _, body = harness.http_request(self.daemon.port, "PUT", path, b"56789",
                                               {"Content-Range": "bytes 5-9/10"})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["md5Hash"], gcs_hashes(b"0123456789")[0])
        self.assertEqual(json.loads(body)["contentType"], "text/plain")
        [event] = self.wait_events("on-finalize", "chunks.txt", 1)
        self.assertEqual(event["object"]["size"], "10")
        status, _, _ = harness.http_request(self.daemon.port, "PUT", path, b"x", {"Content-Range": "bytes 10-10/11"})
        self.assertEqual(status, 404)  # the upload is over
        # An upload past the in-memory bound is refused at its first chunk.
        status, headers, _ = harness.http_request(
            self.daemon.port, "POST", "/upload/storage/v1/b/uploads/o?uploadType=resumable&name=huge.bin", b"{}",
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        huge = headers["location"][headers["location"].index("/upload/"):]
        status, _, _ = harness.http_request(self.daemon.port, "PUT", huge, b"0123",
                                            {"Content-Range": "bytes 0-3/%d" % (8 << 30)})
        self.assertEqual(status, 413)

        boundary = "ferry-boundary"
        body = ("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n--%s\r\n"
                "Content-Type: text/csv\r\n\r\n" % (boundary, json.dumps({"name": "multi.csv", "metadata": {"k": "v"}}),
                                                    boundary)).encode() + b"a,b\r\n1,2" + ("\r\n--%s--" % boundary).encode()
        status, _, res = harness.http_request(self.daemon.port, "POST", "/upload/storage/v1/b/uploads/o?uploadType=multipart",
                                              body, {"Content-Type": "multipart/related; boundary=" + boundary})
        self.assertEqual(status, 200, res)
        res = json.loads(res)
        self.assertEqual((res["name"], res["contentType"], res["metadata"]), ("multi.csv", "text/csv", {"k": "v"}))
        status, _, data = harness.http_request(self.daemon.port, "GET", "/download/storage/v1/b/uploads/o/multi.csv?alt=media")
        self.assertEqual((status, data), (200, b"a,b\r\n1,2"))
        # Byte ranges, as sliced downloads ask for them.
        path = "/storage/v1/b/uploads/o/multi.csv?alt=media"
        status, headers, data = harness.http_request(self.daemon.port, "GET", path, None, {"Range": "bytes=2-4"})
        self.assertEqual((status, data, headers.get("content-range")), (206, b"b\r\n", "bytes 2-4/8"))
        status, _, data = harness.http_request(self.daemon.port, "GET", path, None, {"Range": "bytes=-3"})
        self.assertEqual((status, data), (206, b"1,2"))
        status, _, data = harness.http_request(self.daemon.port, "GET", path, None, {"Range": "bytes=5-"})
        self.assertEqual((status, data), (206, b"1,2"))
        status, _, _ = harness.http_request(self.daemon.port, "GET", path, None, {"Range": "bytes=100-"})
        self.assertEqual(status, 416)

    def test_bad_requests(self):
        status, _ = self.http("POST", "/upload/storage/v1/b/no-such-bucket/o?uploadType=media&name=x", body=b"x")
        self.assertEqual(status, 404)
        status, _ = self.http("POST", "/upload/storage/v1/b/uploads/o?uploadType=chunked&name=x", body=b"x")
        self.assertEqual(status, 400)
        status, _ = self.http("POST", "/upload/storage/v1/b/uploads/o?uploadType=multipart&name=x", body=b"x",
                              headers={"Content-Type": "multipart/related; boundary=b"})
        self.assertEqual(status, 400)
        status, _ = self.http("POST", "/upload/storage/v1/b/uploads/o?uploadType=media&name=../escape", body=b"x")
        self.assertEqual(status, 400)


class BucketRestartTest(EventsMixin, unittest.TestCase):
    """What changes in a bucket while Ferry is down raises its events on start, once; custom metadata survives
    the restart; a bucket with versioning archives the generations it replaces."""

    def setUp(self):
        self.daemon = harness.Daemon(project="br").start()
        self.work = tempfile.mkdtemp(prefix="ferry-bucket-restart-")
        self.keep = os.path.join(self.work, "keep")
        self.versioned = os.path.join(self.work, "versioned")
        os.makedirs(self.keep)
        with open(os.path.join(self.keep, "before.txt"), "w") as f:
            f.write("here before the bucket was declared")
        deploy = os.path.join(self.work, "ferry.yaml")
        functions = ""
        for name, event, bucket in (("keep-finalize", "finalize", "keep"), ("keep-delete", "delete", "keep"),
                                    ("versioned-archive", "archive", "versioned"),
                                    ("versioned-delete", "delete", "versioned")):
            functions += textwrap.dedent("""\
                  - name: %s
                    runtime: python3
                    source_dir: %s
                    entry_point: on_object
                    event_trigger_type: google.storage.object.%s
                    event_trigger_resource: %s
                """) % (name, json.dumps(os.path.join(HERE, "python_function")), event, bucket)
        with open(deploy, "w") as f:
            f.write("project: br\nbuckets:\n  - {name: keep, path: ./keep}\n"
                    "  - {name: versioned, path: ./versioned, versioning: true}\nfunctions:\n" + functions)
        self.daemon.deploy(deploy)

    def tearDown(self):
        self.daemon.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def write(self, name, data):
        with open(os.path.join(self.keep, name), "wb") as f:
            f.write(data)

    def test_changes_while_down_raise_their_events_on_start_and_metadata_survives(self):
        status, _, body = harness.http_request(
            self.daemon.port, "POST", "/upload/storage/v1/b/keep/o?uploadType=media&name=meta.txt", b"with metadata",
            {"Content-Type": "text/markdown"})
        self.assertEqual(status, 200, body)
        status, _, body = harness.http_request(self.daemon.port, "PATCH", "/storage/v1/b/keep/o/meta.txt",
                                               json.dumps({"metadata": {"color": "blue"}}).encode(),
                                               {"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        for name in ("stays.txt", "changes.txt", "goes.txt"):
            self.write(name, name.encode())
        for name in ("meta.txt", "stays.txt", "changes.txt", "goes.txt"):
            self.wait_events("keep-finalize", name, 1)
        [old_changes] = self.events("keep-finalize", "changes.txt")

        self.daemon.stop()
        time.sleep(0.01)
        self.write("changes.txt", b"changed while ferry was down")
        os.remove(os.path.join(self.keep, "goes.txt"))
        self.write("new.txt", b"new while ferry was down")
        self.daemon.start()

        [new] = self.wait_events("keep-finalize", "new.txt", 1)
        md5, crc = gcs_hashes(b"new while ferry was down")
        self.assertEqual((new["object"]["md5Hash"], new["object"]["crc32c"]), (md5, crc))
        changed = self.wait_events("keep-finalize", "changes.txt", 2)
        self.assertNotEqual(changed[1]["object"]["generation"], old_changes["object"]["generation"])
        [replaced] = self.wait_events("keep-delete", "changes.txt", 1)
        self.assertEqual(replaced["object"]["generation"], old_changes["object"]["generation"])
        self.wait_events("keep-delete", "goes.txt", 1)
        # Unchanged files raise nothing, nor do the files that were there before the bucket was declared.
        self.assertEqual(len(self.events("keep-finalize", "stays.txt")), 1)
        self.assertEqual(len(self.events("keep-finalize", "meta.txt")), 1)
        self.assertEqual(self.events("keep-finalize", "before.txt"), [])

        status, _, body = harness.http_request(self.daemon.port, "GET", "/storage/v1/b/keep/o/meta.txt")
        self.assertEqual(status, 200, body)
        meta = json.loads(body)
        self.assertEqual(meta.get("metadata"), {"color": "blue"})
        self.assertEqual(meta["metageneration"], "2")  # one PATCH since the upload
        self.assertEqual(meta["contentType"], "text/markdown")

        # A second restart with nothing changed raises nothing.
        self.daemon.stop()
        self.daemon.start()
        time.sleep(1)
        self.assertEqual(len(self.events("keep-finalize", "new.txt")), 1)
        self.assertEqual(len(self.events("keep-delete", "goes.txt")), 1)

    def test_versioning_archives_replaced_and_deleted_generations(self):
        path = os.path.join(self.versioned, "v.txt")
        with open(path, "wb") as f:
            f.write(b"one")
        time.sleep(0.5)
        time.sleep(0.01)
        tmp = os.path.join(self.work, "staged")
        with open(tmp, "wb") as f:
            f.write(b"two")
        os.rename(tmp, path)
        [first] = self.wait_events("versioned-archive", "v.txt", 1)
        self.assertEqual(first["event_type"], "google.storage.object.archive")
        os.remove(path)
        second = self.wait_events("versioned-archive", "v.txt", 2)
        self.assertNotEqual(second[0]["object"]["generation"], second[1]["object"]["generation"])
        self.assertEqual(self.events("versioned-delete", "v.txt"), [])


if __name__ == "__main__":
    harness.FERRY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
