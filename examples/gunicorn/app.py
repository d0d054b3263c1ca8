"""The WSGI app of hupd's gunicorn example.

Every answer names the gunicorn master and the worker that served it, so a
swap shows as a new master PID. Edit MESSAGE and save: hupd starts a new
gunicorn master, which imports the new code, and stops the old one.
"""

import os

MESSAGE = "hello v1"


def app(environ, start_response):
    body = ("gunicorn master %d worker %d: %s\n" % (os.getppid(), os.getpid(), MESSAGE)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
