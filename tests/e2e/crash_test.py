"""Data safety: kill -9 the daemon at random moments while clients publish and ack; nothing answered OK is lost
or undone. Every publish answered 200 must be delivered afterwards; every ack answered 200 must stay acked."""
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROUNDS = int(os.environ.get("FERRY_CRASH_ROUNDS", "12"))


class CrashTest(unittest.TestCase):
    def test_kill9_loses_no_answered_publish_and_undoes_no_answered_ack(self):
        rng = random.Random(int(os.environ.get("FERRY_CRASH_SEED", time.time())))
        daemon = harness.Daemon().start()
        try:
            setup = daemon.client()
            setup.create_topic("crash")
            setup.create_subscription("crash-sub", "crash", ackDeadlineSeconds=10)
            setup.close()

            published = set()   # data whose publish was answered 200
            acked = set()       # data whose ack was answered 200
            ack_sent = set()    # data whose ack was sent: an unanswered ack may have committed before the kill
            redelivered_after_ack = []
            lock = threading.Lock()

            for round_no in range(ROUNDS):
                stop = threading.Event()
                port = daemon.port

                def publisher(worker):
                    client = harness.Client(port, timeout=5)
                    seq = 0
                    while not stop.is_set():
                        batch = ["r%d-w%d-%d-%d" % (round_no, worker, seq, i) for i in range(5)]
                        seq += 1
                        try:
                            client.publish("crash", batch)
                        except Exception:  # the daemon died mid-request: not answered, no promise made
                            return
                        with lock:
                            published.update(batch)

                def consumer():
                    client = harness.Client(port, timeout=5)
                    while not stop.is_set():
                        try:
                            got = client.pull("crash-sub", 50)
                            with lock:
                                for r in got:
                                    if harness.data_of(r) in acked:
                                        redelivered_after_ack.append(harness.data_of(r))
                            if got:
                                with lock:
                                    ack_sent.update(harness.data_of(r) for r in got)
                                client.ack("crash-sub", [r["ackId"] for r in got])
                                with lock:
                                    acked.update(harness.data_of(r) for r in got)
                        except Exception:
                            return

                threads = [threading.Thread(target=publisher, args=(w,)) for w in range(3)]
                threads.append(threading.Thread(target=consumer))
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.05, 0.4))
                daemon.kill9()
                stop.set()
                for t in threads:
                    t.join()
                daemon.start()

            # Drain: every answered publish that was not acked must still be there. Messages leased when the
            # daemon died come back once their 10 s ack deadline passes, so drain until the backlog is empty.
            client = daemon.client()
            remaining = set()
            deadline = time.time() + 60
            while time.time() < deadline:
                got = client.pull("crash-sub", 1000, immediately=False)
                if not got:
                    if client.metric("ferry_subscription_backlog_messages", client.sub("crash-sub")) == 0:
                        break
                    continue
                for r in got:
                    d = harness.data_of(r)
                    if d in acked:
                        redelivered_after_ack.append(d)
                    remaining.add(d)
                client.ack("crash-sub", [r["ackId"] for r in got])

            self.assertGreater(len(published), 100, "the test published too little to mean anything")
            self.assertGreater(len(acked), 10, "the test acked too little to mean anything")
            lost = published - ack_sent - remaining
            self.assertEqual(lost, set(), "%d answered publishes lost across %d kill -9 rounds" % (len(lost), ROUNDS))
            self.assertEqual(redelivered_after_ack, [], "acks answered OK were undone")
            print("crash test: %d rounds, %d publishes answered, %d acks answered, %d drained after"
                  % (ROUNDS, len(published), len(acked), len(remaining)))
        finally:
            daemon.close()


if __name__ == "__main__":
    harness.FERRY = sys.argv.pop(1)
    unittest.main(verbosity=2)
