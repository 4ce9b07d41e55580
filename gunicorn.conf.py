"""gunicorn settings for Pulse (`gunicorn -c gunicorn.conf.py wsgi:app`)."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG") else None


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
