"""The soak's load and sampler (run by bench/soak.sh, which starts Ferry with the deploy file this expects).

Load, steady for the whole run:
  - publishers: batches of 100 messages of 100 bytes to "soak", paced to --rate messages/s;
  - pullers: pull up to 1000 from "soak-sub" and acknowledge them, as fast as messages come;
  - one publisher to "soak-work" at --fn-rate/s, each message carrying sent_us, so the trivial function logs how
    long it took to reach it;
  - a file written into the bucket directory every second.
Every --sample-seconds it prints the daemon's RSS, CPU use since the last sample, threads, open descriptors,
the sizes of ferry.db and executions.db (with their WALs), publish p99 (ms) and publish-to-function p99 (ms)
over that interval, and the messages published and consumed. At the end, the first and last samples."""
import argparse
import base64
import http.client
import json
import os
import threading
import time

PROJECT = "bench"


class Conn:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers={"Content-Type": "application/json"})
                res = self.conn.getresponse()
                text = res.read()
                return res.status, (json.loads(text) if text and res.getheader("Content-Type", "").startswith(
                    "application/json") else text)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
        return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.publish_ms = []
        self.published = 0
        self.consumed = 0
        self.errors = 0

    def take(self):
        with self.lock:
            out = (self.publish_ms, self.published, self.consumed, self.errors)
            self.publish_ms = []
            return out


def p99(values):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def publisher(args, stats, stop, share):
    c = Conn(args.port)
    data = base64.b64encode(b"x" * 100).decode()
    body = {"messages": [{"data": data} for _ in range(100)]}
    interval = 100.0 / share
    next_at = time.monotonic()
    while not stop.is_set():
        start = time.monotonic()
        status, _ = c.call("POST", "/v1/projects/%s/topics/soak:publish" % PROJECT, body)
        took = (time.monotonic() - start) * 1000
        with stats.lock:
            stats.publish_ms.append(took)
            if status == 200:
                stats.published += 100
            else:
                stats.errors += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()  # behind: do not try to catch up in a burst


def puller(args, stats, stop):
    c = Conn(args.port)
    path = "/v1/projects/%s/subscriptions/soak-sub" % PROJECT
    while not stop.is_set():
        status, res = c.call("POST", path + ":pull", {"maxMessages": 1000})
        got = res.get("receivedMessages", []) if status == 200 else []
        if got:
            c.call("POST", path + ":acknowledge", {"ackIds": [r["ackId"] for r in got]})
            with stats.lock:
                stats.consumed += len(got)


def function_feeder(args, stop):
    c = Conn(args.port)
    interval = 1.0 / args.fn_rate
    next_at = time.monotonic()
    while not stop.is_set():
        sent_us = str(int(time.time() * 1e6))
        c.call("POST", "/v1/projects/%s/topics/soak-work:publish" % PROJECT,
               {"messages": [{"data": "e30=", "attributes": {"sent_us": sent_us}}]})
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()


def file_dropper(args, stop):
    seq = 0
    while not stop.is_set():
        tmp = os.path.join(args.drop, ".incoming")
        with open(tmp, "w") as f:
            f.write("soak file %d\n" % seq)
        os.rename(tmp, os.path.join(args.drop, "file-%06d.txt" % (seq % 600)))  # 600 names, overwritten in turn
        seq += 1
        stop.wait(1.0)


def proc_sample(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss_mb = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_mb = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return cpu_s, rss_mb, threads, fds


def db_mb(data_dir, name):
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.path.getsize(os.path.join(data_dir, name + suffix))
        except OSError:
            pass
    return total / (1 << 20)


def function_p99(c):
    status, res = c.call("GET", "/ferry/v1/projects/%s/functions/trivial/logs?limit=2000" % PROJECT)
    if status != 200:
        return float("nan")
    values = [int(e["message"].split("=", 1)[1]) / 1000 for e in res["entries"]
              if e["message"].startswith("latency_us=")]
    return p99(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--drop", required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--sample-seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--fn-rate", type=float, default=200)
    args = ap.parse_args()

    admin = Conn(args.port)
    status, res = admin.call("PUT", "/v1/projects/%s/subscriptions/soak-sub" % PROJECT,
                             {"topic": "projects/%s/topics/soak" % PROJECT})
    assert status == 200, res
    stats = Stats()
    stop = threading.Event()
    publishers = 4
    threads = [threading.Thread(target=publisher, args=(args, stats, stop, args.rate / publishers), daemon=True)
               for _ in range(publishers)]
    threads += [threading.Thread(target=puller, args=(args, stats, stop), daemon=True) for _ in range(3)]
    threads += [threading.Thread(target=function_feeder, args=(args, stop), daemon=True),
                threading.Thread(target=file_dropper, args=(args, stop), daemon=True)]
    for t in threads:
        t.start()

    header = ("%6s %8s %6s %7s %5s %9s %9s %9s %9s %10s %10s %6s" %
              ("min", "rss_MB", "cpu%", "threads", "fds", "store_MB", "execs_MB", "pub_p99", "fn_p99", "published",
               "consumed", "errors"))
    print("soak: %.0f min at %.0f msg/s, function %.0f/s; a sample every %.0f s" % (
        args.minutes, args.rate, args.fn_rate, args.sample_seconds))
    print(header, flush=True)
    samples = []
    started = time.monotonic()
    last_cpu, _, _, _ = proc_sample(args.pid)
    last_t = started
    published_total = consumed_total = errors_total = 0
    while time.monotonic() - started < args.minutes * 60:
        time.sleep(args.sample_seconds)
        now = time.monotonic()
        cpu_s, rss, nthreads, fds = proc_sample(args.pid)
        pub_ms, published, consumed, errors = stats.take()
        published_total, consumed_total, errors_total = published, consumed, errors
        row = ((now - started) / 60, rss, 100 * (cpu_s - last_cpu) / (now - last_t), nthreads, fds,
               db_mb(args.data_dir, "ferry.db"), db_mb(args.data_dir, "executions.db"), p99(pub_ms),
               function_p99(admin), published, consumed, errors)
        last_cpu, last_t = cpu_s, now
        samples.append(row)
        print("%6.1f %8.1f %6.0f %7d %5d %9.1f %9.1f %9.1f %9.1f %10d %10d %6d" % row, flush=True)
    stop.set()
    if samples:
        print("\nfirst and last sample:")
        print(header)
        for row in (samples[0], samples[-1]):
            print("%6.1f %8.1f %6.0f %7d %5d %9.1f %9.1f %9.1f %9.1f %10d %10d %6d" % row)
        print("messages published %d, consumed %d, publish errors %d" % (published_total, consumed_total,
                                                                          errors_total))


if __name__ == "__main__":
    main()
