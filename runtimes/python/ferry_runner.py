"""Ferry's Python runtime: serves one function of `main.py` over the Functions Framework contract, with the
standard library only (Ferry embeds this file and starts it as `python3 ferry_runner.py` in the function's
source_dir).

Environment: PORT (or FERRY_UNIX_SOCKET, a socket path Ferry names), FUNCTION_TARGET (the entry point),
FUNCTION_SIGNATURE_TYPE (event, cloudevent or http), K_SERVICE. Calls are made as Google's Python Functions
Framework makes them:
  event:      fn(data, context) with context.event_id, .timestamp, .event_type, .resource
  cloudevent: fn(cloud_event) with cloud_event["type"], ... and cloud_event.data
  http:       fn(request) with a Flask-like request; returns a body, (body, status) or (body, status, headers)
An exception answers 500 and its traceback goes to stderr, which Ferry keeps in the execution's log.

Code written for Google's runtime that imports `functions_framework` runs unchanged: the runner provides that
module (its `http`, `cloud_event` and `typed` decorators), and a function's decorator sets its signature type, as
Google's framework does. A `cloud_event` function on a Pub/Sub trigger gets the event Google's framework would make
of it (type google.cloud.pubsub.topic.v1.messagePublished, data {"message": ..., "subscription": ...}).
"""
import hmac
import http.server
import importlib
import json
import logging
import os
import socketserver
import sys
import traceback
import types
import urllib.parse


class Context:
    """The `context` of a background function, as Google's Python runtime passes it."""

    def __init__(self, event_id=None, timestamp=None, event_type=None, resource=None):
        self.event_id = event_id
        self.timestamp = timestamp
        self.event_type = event_type
        self.resource = resource

    def __repr__(self):
        return "{event_id: %s, timestamp: %s, event_type: %s, resource: %s}" % (
            self.event_id, self.timestamp, self.event_type, self.resource)


class CloudEvent:
    """A CloudEvent: attributes by subscript (event["type"]), payload in .data."""

    def __init__(self, attributes, data):
        self._attributes = attributes
        self.data = data

    def __getitem__(self, key):
        return self._attributes[key]

    def get(self, key, default=None):
        return self._attributes.get(key, default)

    def get_attributes(self):
        return dict(self._attributes)

    def __repr__(self):
        return "CloudEvent(%r, %r)" % (self._attributes, self.data)


class Request:
    """The parts of flask.Request that HTTP functions use most."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.full_path = path + ("?" + query if query else "")
        self.query_string = query.encode()
        self.args = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        self.headers = headers
        self.content_type = headers.get("content-type")
        self.data = body

    def get_data(self, as_text=False):
        return self.data.decode() if as_text else self.data

    def get_json(self, silent=False, force=False):
        try:
            return json.loads(self.data or b"null")
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json(silent=True)


class StructuredHandler(logging.Handler):
    """Log records as the one-line JSON that Ferry (and Cloud Logging) reads: message and severity."""

    def emit(self, record):
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            sys.stdout.write(json.dumps({"severity": record.levelname, "message": message}) + "\n")
            sys.stdout.flush()
        except Exception:  # never let logging break the function
            self.handleError(record)


def setup_logging():
    # As Google's Python runtime: INFO and above from any logger reach the function's logs.
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(StructuredHandler())


# Signature types that functions_framework's decorators declared, by function name.
DECLARED_SIGNATURES = {}


def install_functions_framework():
    """A `functions_framework` module with Google's decorators; each returns the function unchanged."""
    module = types.ModuleType("functions_framework")

    def declare(signature):
        def decorator(fn):
            DECLARED_SIGNATURES[fn.__name__] = signature
            return fn
        return decorator

    module.http = declare("http")
    module.cloud_event = declare("cloudevent")

    def typed(*args, **kwargs):  # @typed or @typed(InputType): an HTTP function taking and returning JSON
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return declare("http")(args[0])
        return declare("http")
    module.typed = typed
    module.CloudEvent = CloudEvent
    sys.modules["functions_framework"] = module


def load_function():
    sys.path.insert(0, os.getcwd())
    install_functions_framework()
    target = os.environ["FUNCTION_TARGET"]
    module = importlib.import_module("main")
    fn = getattr(module, target, None)
    if not callable(fn):
        raise SystemExit("ferry: main.py has no function named %r" % target)
    return fn


def legacy_to_cloudevent(body):
    """A background (legacy) event as Google's framework turns it into a CloudEvent for a cloud_event function."""
    payload = json.loads(body or b"{}")
    ctx = payload.get("context", {})
    data = payload.get("data")
    resource = ctx.get("resource")
    if isinstance(resource, dict):
        resource = resource.get("name")
    event_type = ctx.get("eventType", "")
    attributes = {"specversion": "1.0", "id": ctx.get("eventId"), "time": ctx.get("timestamp"),
                  "type": event_type, "source": resource}
    if event_type == "google.pubsub.topic.publish":
        message = dict(data or {})
        message.setdefault("messageId", ctx.get("eventId"))
        message.setdefault("publishTime", ctx.get("timestamp"))
        attributes["type"] = "google.cloud.pubsub.topic.v1.messagePublished"
        attributes["source"] = "//pubsub.googleapis.com/" + (resource or "")
        data = {"message": message, "subscription": os.environ.get("K_SERVICE", "")}
    return CloudEvent(attributes, data)


def event_call(fn, headers, body):
    if "ce-type" in headers:  # a binary CloudEvent, given to a background function as (data, context)
        data = json.loads(body or b"null")
        context = Context(headers.get("ce-id"), headers.get("ce-time"), headers.get("ce-type"),
                          headers.get("ce-source"))
        return fn(data, context)
    payload = json.loads(body or b"{}")
    ctx = payload.get("context", {})
    return fn(payload.get("data"), Context(ctx.get("eventId"), ctx.get("timestamp"), ctx.get("eventType"),
                                           ctx.get("resource")))


def cloudevent_call(fn, headers, body):
    attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    data = body
    if (headers.get("content-type") or "").startswith("application/json"):
        data = json.loads(body or b"null")
    return fn(CloudEvent(attributes, data))


def to_http(result):
    """A function's return value as (status, headers, body bytes), as Flask would make it."""
    status, headers = 200, {}
    if isinstance(result, tuple):
        parts = list(result) + [None, None]
        result, status, headers = parts[0], parts[1] or 200, dict(parts[2] or {})
    if result is None:
        body = b""
    elif isinstance(result, (dict, list)):
        body = json.dumps(result).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(result, bytes):
        body = result
    else:
        body = str(result).encode()
        headers.setdefault("Content-Type", "text/html; charset=utf-8")
    return int(status), headers, body


def main():
    setup_logging()
    fn = load_function()
    signature = os.environ.get("FUNCTION_SIGNATURE_TYPE", "http")
    # A functions_framework decorator says how the function is called, as with Google's framework.
    declared = DECLARED_SIGNATURES.get(os.environ["FUNCTION_TARGET"])
    secret = os.environ.get("FERRY_INSTANCE_SECRET", "")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body go out in two sends; with Nagle's algorithm the second waits for the ACK of
        # the first, which Ferry's side delays: 40 ms a call on a keep-alive connection. TCP_NODELAY ends that.
        disable_nagle_algorithm = True

        def handle_call(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            # Under Ferry only Ferry may call: it sends the instance's secret, which no other local user knows.
            if secret and not hmac.compare_digest(self.headers.get("x-ferry-instance-secret", ""), secret):
                out = b"Forbidden: this instance serves Ferry only\n"
                self.send_response(403)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "x-ferry-instance-secret"}
            parsed = urllib.parse.urlsplit(self.path)
            try:
                if declared == "cloudevent" and signature == "event" and "ce-type" not in headers:
                    fn(legacy_to_cloudevent(body))
                    status, out_headers, out = 200, {}, b"OK"
                elif declared == "cloudevent" or (declared is None and signature == "cloudevent"):
                    cloudevent_call(fn, headers, body)
                    status, out_headers, out = 200, {}, b"OK"
                elif declared == "http" or signature == "http":
                    request = Request(self.command, parsed.path, parsed.query, headers, body)
                    status, out_headers, out = to_http(fn(request))
                else:  # a background function: (data, context)
                    event_call(fn, headers, body)
                    status, out_headers, out = 200, {}, b"OK"
            except Exception as e:  # the function failed: its traceback goes to the log, its message answers
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
                status, out_headers, out = 500, {}, ("%s: %s" % (type(e).__name__, e)).encode()
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_call

        def log_message(self, *args):
            pass

    unix_socket = os.environ.get("FERRY_UNIX_SOCKET")
    if unix_socket:
        # Under Ferry: the Unix socket it names (less work per call than loopback TCP; only its user can connect).
        Handler.disable_nagle_algorithm = False  # no TCP here

        class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        if os.path.exists(unix_socket):
            os.unlink(unix_socket)
        server = UnixServer(unix_socket, Handler)
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
        server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
