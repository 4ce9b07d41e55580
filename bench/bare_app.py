"""The baselines of bench/ingest.py, served by gunicorn with the same settings as Pulse
(`gunicorn -w 2 -b 127.0.0.1:PORT bench.bare_app:app`):

* `POST /echo` — a bare Flask JSON POST endpoint (SPEC §9's baseline);
* `POST /echo-redis` — the same plus SPEC §9's second reference point: one pipelined Redis
  `ZADD` + `ZREMRANGEBYSCORE` + `EXPIRE` (redis-py, `REDIS_URL`), i.e. the least any
  endpoint that answers only once its point is in Redis has to do.
"""

import os
import time

import redis
from flask import Flask, jsonify, request

app = Flask(__name__)
_redis: list[redis.Redis] = []


@app.post("/echo")
def echo():
    request.get_json()
    return jsonify({"ok": True})


@app.post("/echo-redis")
def echo_redis():
    body = request.get_json()
    if not _redis:
        _redis.append(redis.Redis.from_url(os.environ["REDIS_URL"]))
    now_ms = int(time.time() * 1000)
    key = f"bare:live:{body['node_id']}"
    pipe = _redis[0].pipeline(transaction=False)
    pipe.zadd(key, {f"{body['timestamp']}:{body['latency_ms']}": now_ms})
    pipe.zremrangebyscore(key, "-inf", f"({now_ms - 3_600_000}")
    pipe.expire(key, 3900)
    pipe.execute()
    return jsonify({"ok": True})
