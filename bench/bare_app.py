"""The baseline of bench/ingest.py: a bare Flask JSON POST endpoint, served by gunicorn with
the same settings as Pulse (`gunicorn -w 2 -b 127.0.0.1:PORT bench.bare_app:app`)."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo():
    request.get_json()
    return jsonify({"ok": True})
