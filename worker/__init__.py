"""The Celery app, bound to a Flask app: `celery -A worker worker|beat`.

As in Flask's Celery example, every task runs inside the Flask app context. The Flask app
is built once, lazily, when the Celery CLI asks for `worker.celery` (PEP 562 module
__getattr__), so importing `worker.tasks` in tests or embedded mode builds nothing.
"""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask, has_app_context


def celery_init_app(flask_app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            # Called in-process (tests, embedded scheduler) inside an app already.
            if has_app_context():
                return self.run(*args, **kwargs)
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(flask_app.name, task_cls=FlaskTask)
    celery.config_from_object("celeryconfig")
    if flask_app.config.get("CELERY_BROKER_URL"):
        celery.conf.broker_url = flask_app.config["CELERY_BROKER_URL"]
    celery.set_default()
    flask_app.extensions["celery"] = celery
    import worker.tasks  # noqa: F401  registers the shared tasks with this app

    return celery


_celery: Celery | None = None


def __getattr__(name: str):
    global _celery
    if name in ("celery", "app"):
        if _celery is None:
            from app import create_app

            _celery = celery_init_app(create_app())
        return _celery
    raise AttributeError(name)
