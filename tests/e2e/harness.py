"""Runs a real `ferry serve` process for end-to-end tests, and talks to it over HTTP (standard library only)."""
import base64
import glob
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

FERRY = os.environ.get("FERRY_BIN", "")


class Daemon:
    """A `ferry serve` on a free port with its own data directory; restartable on the same data."""

    def __init__(self, data_dir=None, project="test-proj", extra_args=(), tokens=None, port=0, env=None):
        """tokens: {"admin": SECRET, "publisher,subscriber": SECRET2, ...}, written to a token file the daemon
        reads with --token-file. The client(), deploy() and log_messages() helpers then send the admin token.
        port: 0 picks a free port at each start; a fixed one lets clients reconnect across restarts.
        env: further environment variables for the daemon."""
        self.owned_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ferry-e2e-")
        self.project = project
        self.extra_args = list(extra_args)
        self.tokens = dict(tokens or {})
        self.admin_token = self.tokens.get("admin")
        if self.tokens:
            path = os.path.join(self.data_dir, "tokens.txt")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write("# role[,role]=secret\n")
                for roles, secret in self.tokens.items():
                    f.write("%s=%s\n" % (roles, secret))
            self.extra_args += ["--token-file", path]
        self.proc = None
        self.fixed_port = port
        self.extra_env = dict(env or {})
        self.port = None
        self.log = None
        self.log_path = os.path.join(self.data_dir, "daemon.log")

    def start(self):
        port_file = os.path.join(self.data_dir, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        if self.log:
            self.log.close()
        self.log = log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [FERRY, "serve", "--data-dir", self.data_dir, "--port", str(self.fixed_port), "--port-file", port_file,
             "--project", self.project,
             # Tests keep their buckets in temporary directories.
             "--bucket-root", tempfile.gettempdir()] + self.extra_args,
            stdout=log, stderr=log, env=dict(os.environ, **self.extra_env))
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ferry exited early:\n" + open(self.log_path).read())
            if os.path.exists(port_file):
                with open(port_file) as f:
                    self.port = int(f.read())
                return self
            time.sleep(0.02)
        raise RuntimeError("ferry did not start in time")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        text = ""
        if self.log:
            self.log.close()
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        if self.owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        # A daemon built with sanitizers (scripts/sanitize.sh) reports into its log: any report fails the test.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "WARNING: ThreadSanitizer"):
            if marker in text:
                at = text.index(marker)
                raise AssertionError("the daemon's sanitizer reported:\n" + text[max(0, at - 200):at + 4000])

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def deploy(self, path, timeout=300):
        """`ferry deploy -f PATH` against this daemon (the file names its project); raises with the CLI's output
        when it fails."""
        env = dict(os.environ, FERRY_ENDPOINT=self.endpoint)
        env.pop("FERRY_PROJECT", None)
        if self.admin_token:
            env["FERRY_TOKEN"] = self.admin_token
        proc = subprocess.run([FERRY, "deploy", "-f", path], env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError("deploy failed: %s\n%s" % (proc.stdout, proc.stderr))
        return proc.stdout

    def cli(self, *args, project=None, timeout=300):
        """`ferry ARGS` against this daemon (with its admin token), in `project` or the daemon's: the finished
        process, its output as text."""
        env = dict(os.environ, FERRY_ENDPOINT=self.endpoint)
        env.pop("FERRY_PROJECT", None)
        if project:
            env["FERRY_PROJECT"] = project
        if self.admin_token:
            env["FERRY_TOKEN"] = self.admin_token
        return subprocess.run([FERRY] + list(args), env=env, capture_output=True, text=True, timeout=timeout)

    def log_messages(self, function, project=None):
        """The messages of a function's newest 1000 log lines, from the admin API."""
        status, _, body = http_request(self.port, "GET", "/ferry/v1/projects/%s/functions/%s/logs?limit=1000" % (
            project or self.project, function), headers=self.auth_headers())
        if status != 200:
            raise AssertionError("logs of %s: HTTP %d %s" % (function, status, body))
        return [e["message"] for e in json.loads(body)["entries"]]

    def auth_headers(self):
        return {"Authorization": "Bearer " + self.admin_token} if self.admin_token else {}

    def client(self, token=None):
        """A REST client sending `token` (default: the admin token, when the daemon has tokens)."""
        return Client(self.port, self.project, token=token or self.admin_token)


class Client:
    """Pub/Sub REST v1 over one keep-alive connection."""

    def __init__(self, port, project="test-proj", timeout=30, token=None):
        self.port = port
        self.project = project
        self.timeout = timeout
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, raw=None, headers=None):
        """Returns (status, parsed JSON or text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json"}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        hdrs.update(headers or {})
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                res = self.conn.getresponse()
                text = res.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        if res.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        ctype = res.getheader("Content-Type", "")
        if ctype.startswith("application/json"):
            return res.status, json.loads(text) if text else {}
        return res.status, text.decode(errors="replace")

    def metric(self, name, label_value):
        """One sample of /metrics, e.g. metric("ferry_subscription_backlog_messages", sub_name)."""
        status, text = self.request("GET", "/metrics")
        if status != 200:
            raise AssertionError("/metrics -> %d" % status)
        for line in text.splitlines():
            if line.startswith(name + "{") and '"%s"' % label_value in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    # --- Pub/Sub helpers; each raises on a non-200 answer ---

    def topic(self, t):
        return "projects/%s/topics/%s" % (self.project, t)

    def sub(self, s):
        return "projects/%s/subscriptions/%s" % (self.project, s)

    def ok(self, method, path, body=None):
        status, res = self.request(method, path, body)
        if status != 200:
            raise AssertionError("%s %s -> %d %s" % (method, path, status, res))
        return res

    def create_topic(self, t):
        return self.ok("PUT", "/v1/" + self.topic(t), {})

    def create_subscription(self, s, t, **fields):
        body = {"topic": self.topic(t)}
        body.update(fields)
        return self.ok("PUT", "/v1/" + self.sub(s), body)

    def publish(self, t, datas, attributes=None):
        msgs = [{"data": base64.b64encode(d.encode() if isinstance(d, str) else d).decode(),
                 "attributes": attributes or {}} for d in datas]
        return self.ok("POST", "/v1/%s:publish" % self.topic(t), {"messages": msgs})["messageIds"]

    def pull(self, s, max_messages=1000, immediately=True):
        res = self.ok("POST", "/v1/%s:pull" % self.sub(s),
                      {"maxMessages": max_messages, "returnImmediately": immediately})
        return res.get("receivedMessages", [])

    def ack(self, s, ack_ids):
        return self.ok("POST", "/v1/%s:acknowledge" % self.sub(s), {"ackIds": ack_ids})

    def nack(self, s, ack_ids):
        return self.ok("POST", "/v1/%s:modifyAckDeadline" % self.sub(s),
                       {"ackIds": ack_ids, "ackDeadlineSeconds": 0})


def free_port():
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=30, interval=0.1, what="condition"):
    """The first truthy value of predicate(), polled until the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def unix_http_request(socket_path, method, path, headers=None):
    """One request over a Unix socket (an instance of the C++ SDK or the Python runner): (status, body bytes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(socket_path)
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        s.sendall((head + "\r\n").encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def http_request(port, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, headers with lowercased names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


class PushReceiver:
    """An HTTP endpoint for push subscriptions: records each request and answers `status`."""

    def __init__(self):
        import http.server
        import threading
        receiver = self
        self.requests = []
        self.status = 200
        self.status_by_path = {}  # overrides `status` for these paths
        self.cond = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.cond:
                    receiver.requests.append({"path": self.path, "body": body.decode(), "at": time.time(),
                                              "headers": {k.lower(): v for k, v in self.headers.items()}})
                    receiver.cond.notify_all()
                self.send_response(receiver.status_by_path.get(self.path, receiver.status))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n, timeout=15):
        """The first n requests, waiting for them to arrive."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError("%d push requests arrived, expected %d" % (len(self.requests), n))
            return list(self.requests[:n])


def data_of(received):
    return base64.b64decode(received["message"].get("data", "")).decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free port, trusting local connections."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh installs it)")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix="ferry-pg-")
        self.port = free_port()
        # initdb refuses to run as root: then the cluster belongs to the postgres user.
        self.as_user = []
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                 "-p %d -h 127.0.0.1 -k %s" % (self.port, self.dir), "start")
        self.data = data

    def run(self, tool, *args):
        subprocess.run(self.as_user + [os.path.join(self.bin, tool)] + list(args), check=True, capture_output=True,
                       timeout=120)

    def psql(self, sql, db="postgres"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-v",
                        "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, timeout=60)

    def query(self, sql, db="postgres"):
        """The rows of a query, each a list of its columns' text."""
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-v",
                              "ON_ERROR_STOP=1", "-tA", "-F", "\t", "-c", sql], check=True, capture_output=True,
                             timeout=60, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def url(self, db="postgres"):
        """A libpq URI of database `db` on this server."""
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def close(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
