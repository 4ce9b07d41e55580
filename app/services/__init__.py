"""Logic shared by the API, the CLI and the worker. Takes ids and plain values."""
