"""The baseline: a bare functions-framework hello world, served like our functions."""

import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
