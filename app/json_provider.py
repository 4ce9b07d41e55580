"""Flask's JSON answers, encoded by orjson.

A node page's chart data (10 probes × 1,440 minutes × 8 series) or a two-year chart
through the API is 100,000+ floats; the standard library's encoder spent ~40 ms on them
where orjson takes a few. Answers keep Flask's shape: every type orjson does not encode
the way Flask's provider does (datetimes as HTTP dates, dataclasses, Decimals) is handed
to Flask's own `default`. Request bodies are still parsed by the standard library: its
errors and limits are the ones the API's validation and tests rely on (the heartbeat fast
path parses with orjson only the bodies both read alike: app.ingest.fast_path.parse_body).
The fast path encodes its answer with `encode`, so it sends the bytes the view would.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_NON_STR_KEYS)


class OrjsonProvider(DefaultJSONProvider):
    def encode(self, obj: Any) -> bytes:
        """The JSON bytes of an answer (without the newline `response` adds)."""
        options = _OPTIONS | (orjson.OPT_SORT_KEYS if self.sort_keys else 0)
        try:
            return orjson.dumps(obj, default=self.default, option=options)
        except orjson.JSONEncodeError:  # what orjson refuses (an int over 64 bits, …)
            return super().dumps(obj).encode()

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # a caller asking for the standard library's options gets them
            return super().dumps(obj, **kwargs)
        return self.encode(obj).decode()

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(obj)  # pretty-printed, as Flask does in debug
        return self._app.response_class(self.encode(obj) + b"\n", mimetype=self.mimetype)
