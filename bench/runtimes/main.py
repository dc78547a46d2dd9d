# The runtimes benchmark's trivial HTTP function for Ferry's Python runner.
def trivial_http(request):
    return "ok"
