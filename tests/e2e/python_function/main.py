"""Python functions for tests/e2e/runtimes_test.py, as Google's Python runtime calls them."""
import base64
import json
import os
import time


def hello_pubsub(event, context):
    data = base64.b64decode(event["data"]).decode() if event.get("data") else ""
    print("python got data=%s attributes=%s event_id=%s event_type=%s resource=%s" % (
        data, json.dumps(event.get("attributes") or {}, sort_keys=True), context.event_id, context.event_type,
        json.dumps(context.resource, sort_keys=True)))
    if (event.get("attributes") or {}).get("fail") == "yes":
        raise ValueError("python function failed as asked")


def hello_http(request):
    if request.args.get("sleep"):
        time.sleep(float(request.args["sleep"]))
    body = {"method": request.method, "path": request.path, "args": request.args,
            "json": request.get_json(silent=True), "runtime": "python"}
    return json.dumps(body), 201, {"Content-Type": "application/json", "X-Echo": request.headers.get("x-echo", "")}


def on_object(data, context):
    """A Cloud Storage background function: one line per event with what the test checks."""
    fields = {k: data.get(k) for k in ("bucket", "name", "generation", "size", "contentType", "md5Hash", "crc32c",
                                       "timeCreated", "updated")}
    print("storage event " + json.dumps({"event_type": context.event_type, "resource": context.resource,
                                         "event_id": context.event_id, "object": fields}, sort_keys=True))


def on_object_fails(data, context):
    raise RuntimeError("cannot process " + data.get("name", "?"))


def noisy_http(request):
    """Writes a line that is not UTF-8 and one longer than Ferry keeps whole."""
    import sys
    sys.stdout.buffer.write(b"caf\xe9\n" + b"a" * 200000 + b"\n")
    sys.stdout.flush()
    return "noisy"


def fds_http(request):
    """What this instance inherited: its open descriptors (socket inodes) and its environment's names."""
    import os
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass
    contract = {k: os.environ.get(k) for k in ("FUNCTION_NAME", "FUNCTION_REGION", "GCP_PROJECT", "ENTRY_POINT",
                                               "FUNCTION_TIMEOUT_SEC", "FUNCTION_MEMORY_MB", "FUNCTION_IDENTITY",
                                               "K_SERVICE", "K_REVISION", "FUNCTION_TARGET",
                                               "FUNCTION_SIGNATURE_TYPE")}
    return json.dumps({"fds": fds, "env": sorted(os.environ), "port": os.environ.get("PORT"),
                       "unix_socket": os.environ.get("FERRY_UNIX_SOCKET"), "contract": contract,
                       "headers": sorted(k.lower() for k in request.headers)}), 200, {"Content-Type": "application/json"}


def record_slowly(event, context):
    """Appends "start DATA PPID" (the node running it) and, a second later, "done DATA" to RECORD_FILE: cluster_test.py
    kills a node while calls are under way on it and checks they run again elsewhere."""
    data = base64.b64decode(event["data"]).decode() if event.get("data") else ""
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write("start %s %d\n" % (data, os.getppid()))
    time.sleep(1)
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write("done %s\n" % data)


def overlap_http(request):
    """Appends this call's start and end (the machine's monotonic clock) to OVERLAP_FILE: cluster_test.py calls it
    through every node at once and checks that no two calls of it (max_instances 1) overlap."""
    start = time.clock_gettime(time.CLOCK_MONOTONIC)
    time.sleep(0.03)
    end = time.clock_gettime(time.CLOCK_MONOTONIC)
    with open(os.environ["OVERLAP_FILE"], "a") as f:
        f.write("%.6f %.6f\n" % (start, end))
    return "ok"


def overlap_event(event, context):
    """Appends this call's start and end (the machine's monotonic clock), its node (the instance's parent) and its
    data to OVERLAP_FILE: cluster_test.py checks that a function's calls spread over the nodes and never pass
    max_instances."""
    data = base64.b64decode(event["data"]).decode() if event.get("data") else ""
    start = time.clock_gettime(time.CLOCK_MONOTONIC)
    time.sleep(0.3)
    end = time.clock_gettime(time.CLOCK_MONOTONIC)
    with open(os.environ["OVERLAP_FILE"], "a") as f:
        f.write("%.6f %.6f %d %s\n" % (start, end, os.getppid(), data))


def fail_until_fixed(event, context):
    """Fails every message until deployed with FIXED=1; then prints what it got: dead_letter_test.py fails it until
    its messages are dead-lettered, fixes it, and redrives them."""
    data = base64.b64decode(event["data"]).decode() if event.get("data") else ""
    if os.environ.get("FIXED") != "1":
        raise RuntimeError("cannot handle %s yet" % data)
    print("handled %s attributes=%s" % (data, json.dumps(event.get("attributes") or {}, sort_keys=True)))


def sentry_reports(request):
    """Reports its own failure with Debian's sentry-sdk, configured only by what Ferry sets (SENTRY_DSN,
    SENTRY_RELEASE and Cloud Functions' variables), as a function on Google would; then fails."""
    import sentry_sdk
    from sentry_sdk.integrations.gcp import GcpIntegration
    sentry_sdk.init(integrations=[GcpIntegration()], default_integrations=False)
    with sentry_sdk.configure_scope() as scope:
        scope.set_tag("function_name", os.environ.get("FUNCTION_NAME"))
        scope.set_tag("gcp_project", os.environ.get("GCP_PROJECT"))
    try:
        raise ValueError("the order table is locked")
    except ValueError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(5)
    print("reported to sentry")
    return "failed", 500
