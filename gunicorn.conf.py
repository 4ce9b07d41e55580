"""gunicorn settings for Pulse (`gunicorn -c gunicorn.conf.py wsgi:app`).

Threaded workers with bounded socket reads, so that slow clients cannot take the API
down: with sync workers, five connections sending half a body held every worker until
gunicorn killed them 30 s later. Here a request waits for its socket in a thread of a
pool (gthread: connections with nothing to read yet wait in the worker's poller, not in
a thread), and every receive or send on a client socket gives up after
GUNICORN_READ_TIMEOUT seconds without progress (SO_RCVTIMEO/SO_SNDTIMEO), so a stalled
client holds one thread for at most that long; Pulse answers a body that stalls with 408.
Behind a buffering reverse proxy (nginx's default) none of this is reached.
"""

import multiprocessing
import os
import socket
import struct

from gunicorn.workers.gthread import ThreadWorker

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
READ_TIMEOUT_SECONDS = float(os.environ.get("GUNICORN_READ_TIMEOUT", "10"))
timeout = 30
graceful_timeout = 20
keepalive = 5
# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): every
# gunicorn on the host would fight over it. Pulse does not use `gunicornc`.
control_socket_disable = True
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") else None
_SOCKET_TIMEOUT = struct.pack("ll", int(READ_TIMEOUT_SECONDS),
                              int(READ_TIMEOUT_SECONDS % 1 * 1_000_000))


class BoundedReadThreadWorker(ThreadWorker):
    """gthread whose client sockets time out: gthread itself reads a request's headers
    and body with blocking calls that wait for ever (a thread pinned per slow client).
    The kernel-level timeouts survive the worker's setblocking(True) calls."""

    def enqueue_req(self, conn):
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _SOCKET_TIMEOUT)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SOCKET_TIMEOUT)
        super().enqueue_req(conn)


worker_class = BoundedReadThreadWorker


def on_starting(server):
    # Multiprocess mode needs an empty directory at start (stale files skew counters).
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    # The app's long-lived objects (SQLAlchemy, marshmallow, flask-smorest, the OpenAPI
    # spec) never become garbage: moved out of the collector's generations, they are not
    # walked again by every full collection on the request path.
    import gc

    gc.collect()  # what loading left behind is not frozen with the rest
    gc.freeze()
