"""Alerting (SPEC §11): rules, the evaluation state machine, notifiers, silences, outbox.

Layering: services and history below, the API and the worker above. Evaluation reads the
recent minutes of probes from the live cache (`readings`), judges them (`conditions`),
changes states by compare-and-set with one outbox row per channel in the same
transaction (`transitions`), and deliveries claim their row (`outbox`, `notifiers`).
"""
