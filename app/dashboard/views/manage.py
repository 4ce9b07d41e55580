"""Management pages (operator+): probes, a new node or an enrollment token."""

from __future__ import annotations

import shlex
import uuid

import yaml
from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from app.dashboard.blueprint import bp
from app.dashboard.forms import (
    EnrollmentForm,
    NodeForm,
    field_of,
    parse,
    parse_probe_form,
)
from app.dashboard.security import current_principal, signed_in
from app.errors import ApiError
from app.extensions import db
from app.models import Node
from app.services import nodes as node_service
from app.services import probes as probe_service

PER_PAGE = 100


def _node_names() -> dict:
    return dict(db.session.execute(select(Node.id, Node.name).order_by(Node.name)).all())


def _probe_list_page(form_values: dict, errors: dict, status: int = 200):
    try:
        node_filter = uuid.UUID(request.args["node_id"]) if request.args.get("node_id") else None
    except ValueError:  # a malformed filter lists everything
        node_filter = None
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    rows, pagination = probe_service.list_probes(node_filter, None, page, PER_PAGE)
    return render_template("probes.html", probes=rows, pagination=pagination,
                           names=_node_names(), node_filter=node_filter,
                           form=form_values, errors=errors, saved=request.args.get("saved")
                           ), status


@bp.route("/probes", methods=["GET"])
@signed_in("operator")
def probes():
    return _probe_list_page({"enabled": True, "interval_seconds": 60, "count": 10,
                             "timeout_seconds": 5, "type": "TCP",
                             "node_id": request.args.get("node_id", "")}, {})


def _save_probe(probe=None):
    """Create (probe None) or update from the posted form; (probe, errors)."""
    data, errors = parse_probe_form(request.form)
    if errors:
        return None, errors
    try:
        if probe is None:
            return probe_service.create_probe(data), {}
        return probe_service.update_probe(probe, data), {}
    except ApiError as err:
        return None, {field_of(err): [err.message]}


@bp.route("/probes", methods=["POST"])
@signed_in("operator")
def probe_create():
    probe, errors = _save_probe()
    if errors:
        return _probe_list_page(request.form.to_dict() | {
            "enabled": request.form.get("enabled") == "on"}, errors, 400)
    return redirect(url_for("dashboard.probes", saved=probe.id))


@bp.route("/probes/<probe_id>/edit", methods=["GET", "POST"])
@signed_in("operator")
def probe_edit(probe_id):
    probe = probe_service.get_probe(probe_id)
    if request.method == "GET":
        values = {c: getattr(probe, c) for c in ("name", "type", "target", "port", "enabled",
                                                  "interval_seconds", "count", "timeout_seconds")}
        return render_template("probe_edit.html", probe=probe, form=values, errors={},
                               names=_node_names())
    saved, errors = _save_probe(probe)
    if errors:
        db.session.rollback()
        values = request.form.to_dict() | {"enabled": request.form.get("enabled") == "on"}
        return render_template("probe_edit.html", probe=probe, form=values, errors=errors,
                               names=_node_names()), 400
    return redirect(url_for("dashboard.probes", saved=saved.id))


@bp.route("/probes/<probe_id>/enabled", methods=["POST"])
@signed_in("operator")
def probe_enable(probe_id):
    probe = probe_service.get_probe(probe_id)
    probe_service.update_probe(probe, {"enabled": request.form.get("enabled") == "true"})
    return redirect(url_for("dashboard.probes", saved=probe.id))


@bp.route("/probes/<probe_id>/delete", methods=["GET", "POST"])
@signed_in("operator")
def probe_delete(probe_id):
    probe = probe_service.get_probe(probe_id)
    if request.method == "GET":
        return render_template("probe_delete.html", probe=probe,
                               node_name=_node_names().get(probe.node_id))
    probe_service.delete_probe(probe)
    return redirect(url_for("dashboard.probes"))


def _server_url() -> str:
    return request.host_url.rstrip("/")


def beacon_yaml(node: Node, token: str, server: str) -> str:
    """A ready beacon.yaml for a new node (probes can be added here or on /probes)."""
    document = {"pulse_server": server, "node_id": str(node.id), "node_name": node.name,
                "token": token, "report_interval_seconds": 60, "probes": []}
    return yaml.safe_dump(document, sort_keys=False)


@bp.route("/nodes/new", methods=["GET", "POST"])
@signed_in("operator")
def node_new():
    context = {"node_form": {}, "node_errors": {}, "enroll_form": {}, "enroll_errors": {},
               "created": None, "enrollment": None}
    if request.method == "GET":
        return render_template("node_new.html", **context)
    data, errors = parse(NodeForm(), request.form, ("name", "region"))
    if data is not None:
        try:
            node, token = node_service.create_node(data["name"], data["region"])
        except ApiError as err:
            errors = {"name": [err.message]}
        else:
            context["created"] = {"node": node, "token": token,
                                  "yaml": beacon_yaml(node, token, _server_url())}
            return render_template("node_new.html", **context)
    context.update(node_form=request.form.to_dict(), node_errors=errors)
    return render_template("node_new.html", **context), 400


@bp.route("/nodes/new/enrollment", methods=["POST"])
@signed_in("operator")
def enrollment_new():
    context = {"node_form": {}, "node_errors": {}, "enroll_form": request.form.to_dict(),
               "enroll_errors": {}, "created": None, "enrollment": None}
    data, errors = parse(EnrollmentForm(), request.form, ("expires_in_seconds", "uses"))
    if errors:
        context["enroll_errors"] = errors
        return render_template("node_new.html", **context), 400
    principal = current_principal()
    row, token = node_service.create_enrollment_token(
        data["expires_in_seconds"], data["uses"], principal.id)
    name = request.form.get("name", "").strip() or "NODE-NAME"
    line = (f"beacon register --server {shlex.quote(_server_url())} "
            f"--enroll-token {shlex.quote(token)} --name {shlex.quote(name)}")
    context["enrollment"] = {"row": row, "line": line}
    return render_template("node_new.html", **context)
