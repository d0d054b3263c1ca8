"""The WSGI app of hupd's multi-program example, behind nginx.

Every answer names the gunicorn master and worker that served it: a swap
of the app shows as a new master PID, while nginx's stays the same.
"""

import os

MESSAGE = "hello v1"


def app(environ, start_response):
    body = ("app master %d worker %d: %s\n" % (os.getppid(), os.getpid(), MESSAGE)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
