"""Functions written for Google's Python runtime with functions_framework's decorators, unchanged: Ferry's runner
provides the module (tests/e2e/runtimes_test.py)."""
import base64

import functions_framework


@functions_framework.cloud_event
def on_message(cloud_event):
    message = cloud_event.data["message"]
    print("cloud_event type=%s source=%s data=%s attributes=%s id=%s" % (
        cloud_event["type"], cloud_event["source"], base64.b64decode(message["data"]).decode(),
        message.get("attributes"), message.get("messageId")))


@functions_framework.http
def hello(request):
    return "hello %s" % request.args.get("name", "world")
