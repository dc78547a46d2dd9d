import functools
import logging

log = logging.getLogger(__name__)


def try_catch_log(fn):
    """Logs an exception with the event's id and raises it again, so the invocation fails and retry applies."""

    @functools.wraps(fn)
    def wrapper(event, context):
        try:
            return fn(event, context)
        except Exception:
            log.exception(f"{fn.__name__} failed for event {getattr(context, 'event_id', None)}")
            raise

    return wrapper
