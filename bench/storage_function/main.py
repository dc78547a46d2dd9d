"""The storage benchmark's function: logs when it starts for an object, to the microsecond."""
import time


def on_object(data, context):
    print("started name=%s t=%.6f" % (data["name"], time.time()), flush=True)
