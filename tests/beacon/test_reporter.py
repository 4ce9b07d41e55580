import threading
import time

import pytest

from beacon.probes import ProbeSpec, RunResult
from beacon.pulse import PulseClient, make_transport
from beacon.reporter import IdMap, Reporter, summarize
from beacon.spool import Spool


def run_of(spec: ProbeSpec, samples, started=None) -> RunResult:
    return RunResult(
        spec=spec,
        started_at=started or time.time(),
        samples=list(samples),
        errors=["ERR_CONNECTION_TIMEOUT"] * sum(s is None for s in samples),
    )


TCP = ProbeSpec("TCP", "a.example", 80)
UDP = ProbeSpec("UDP", "b.example", 7)


NOTHING = {"latency_ms": 0.0, "packet_loss_rate": 100.0, "jitter_ms": 0.0}


def test_summary_no_run_yet_and_all_failed():
    assert summarize([]) == NOTHING
    assert summarize([run_of(TCP, [None, None])]) == NOTHING
    assert summarize([run_of(TCP, [None]), run_of(UDP, [None, None, None])]) == NOTHING


def test_summary_loss_counts_every_probe_latency_only_the_answering_ones():
    """SPEC §7: a dead target counts 100 in the loss; latency/jitter skip it."""
    dead = ProbeSpec("TCP", "c.example", 443)
    s = summarize([run_of(TCP, [10.0, 12.0]), run_of(UDP, [20.0, None]), run_of(dead, [None])])
    # loss (0 + 50 + 100) / 3; latency (11 + 20) / 2; jitter (2 + 0) / 2
    assert s == {"latency_ms": 15.5, "packet_loss_rate": 50.0, "jitter_ms": 1.0}
    healthy = summarize([run_of(TCP, [5.0, 7.0]), run_of(UDP, [9.0, 9.0])])
    assert healthy == {"latency_ms": 7.5, "packet_loss_rate": 0.0, "jitter_ms": 1.0}


def test_summary_rounds_once_at_the_end():
    runs = [run_of(TCP, [1.0, None, None]), run_of(UDP, [2.0, 2.0, None])]
    # loss (66.666… + 33.333…) / 2 = 50 exactly, not 66.67/33.33 rounded first
    assert summarize(runs)["packet_loss_rate"] == 50.0
    assert summarize(runs)["latency_ms"] == 1.5


def test_heartbeat_summary_uses_the_latest_runs_and_keeps_latency_0_for_nothing(setup):
    reporter, _, _ = setup
    dead = run_of(UDP, [None, None])
    hb = reporter.build([dead], [run_of(TCP, [4.0]), dead], None)
    assert (hb["latency_ms"], hb["packet_loss_rate"], hb["jitter_ms"]) == (4.0, 50.0, 0.0)
    (result,) = hb["results"]
    assert result["latency_ms"] == 0.0 and result["received"] == 0  # wire format unchanged


@pytest.fixture
def setup(pulse, tmp_path):
    ids = IdMap()
    stop = threading.Event()
    transport = make_transport(pulse.url, pulse.token, True, None, stop)
    transport.initial_retry_delay = 0.01
    spool = Spool(tmp_path / "spool")
    reporter = Reporter(
        PulseClient(transport),
        spool,
        pulse.node_id,
        {"hostname": "h", "ip_address": "127.0.0.1", "region": None},
        lambda: ids,
    )
    return reporter, ids, spool


def learn(ids: IdMap, pulse, *specs):
    version, declared = PulseClient(make_transport(pulse.url, pulse.token, True, None)).declare(
        list(specs)
    )
    for p in declared:
        ids.by_key[p.key] = p.id
        ids.valid.add(p.id)
    ids.known = True
    return version


def test_no_run_yet_heartbeat(setup, pulse):
    reporter, ids, _ = setup
    ids.known = True
    out = reporter.report(reporter.build([], [], None))
    assert out.ok and out.accepted == 0
    (hb,) = pulse.heartbeats
    assert (hb["latency_ms"], hb["jitter_ms"], hb["packet_loss_rate"], hb["results"]) == (
        0,
        0,
        100,
        [],
    )
    assert "config_version" not in hb and hb["agent_version"] and hb["node_id"] == pulse.node_id
    assert hb["timestamp"].endswith("Z")


def test_metadata_and_versions_trimmed_to_pulse_limits(setup, pulse):
    reporter, ids, _ = setup
    ids.known = True
    reporter.metadata = {
        "hostname": "h\x00ost\n" + "x" * 300,
        **{f"k{i}": i for i in range(40)},
    }
    hb = reporter.build([], [], "v" * 200)
    hb["agent_version"] = "1.0\x07" + "9" * 200
    assert reporter.report(hb).ok
    (sent,) = pulse.heartbeats
    assert len(sent["metadata"]) == 32
    assert sent["metadata"]["hostname"] == "host" + "x" * 252
    assert sent["config_version"] == "v" * 128
    assert sent["agent_version"] == "1.0" + "9" * 125


def test_results_mapped_to_ids_after_declaration(setup, pulse):
    reporter, ids, spool = setup
    hb = reporter.build([run_of(TCP, [1.0, None, 3.0])], [], "v0")
    out = reporter.report(hb)  # ids unknown yet: kept in the spool, not lost
    assert not out.ok and out.spooled and spool.heartbeats == 1 and pulse.heartbeats == []
    learn(ids, pulse, TCP)
    out = reporter.report(reporter.build([run_of(UDP, [2.0])], [], "v0"))
    assert out.ok and out.delivered == 2 and spool.heartbeats == 0
    first, second = pulse.heartbeats
    (r,) = first["results"]
    assert r["probe_id"] == ids.by_key[TCP.key] and r["sent"] == 3 and r["received"] == 2
    assert r["packet_loss_rate"] == pytest.approx(33.33) and "_key" not in r
    assert second["results"] == []  # UDP is not a probe of this node: dropped, not sent
    assert reporter.unmapped_dropped == 1


def test_spooled_delivered_oldest_first_in_batches(setup, pulse):
    reporter, ids, spool = setup
    learn(ids, pulse, TCP)
    pulse.stop()
    for i in range(4):
        out = reporter.report(reporter.build([run_of(TCP, [float(i + 1)])], [], "v"))
        assert out.spooled and not out.ok
    assert spool.heartbeats == 4
    pulse.start()
    out = reporter.report(reporter.build([run_of(TCP, [9.0])], [], "v"))
    assert out.ok and out.delivered == 5 and spool.heartbeats == 0
    lat = [hb["results"][0]["latency_ms"] for hb in pulse.heartbeats]
    assert lat == [1.0, 2.0, 3.0, 4.0, 9.0]
    batch_calls = [r for r in pulse.requests if r[1] == "/api/v1/beacon/heartbeats"]
    assert len(batch_calls) == 1


def test_rejected_items_dropped_and_counted(setup, pulse):
    reporter, ids, spool = setup
    learn(ids, pulse, TCP)
    for i in range(3):
        spool.append(reporter.build([run_of(TCP, [float(i + 1)])], [], "v"))
    pulse.reject_batch_index = {1}
    assert reporter.flush()
    assert spool.heartbeats == 0 and spool.rejected == 1
    assert [hb["results"][0]["latency_ms"] for hb in pulse.heartbeats] == [1.0, 3.0]
    assert reporter.flush()  # nothing retried
    assert len(pulse.heartbeats) == 2


def test_final_4xx_drops_live_heartbeat(setup, pulse):
    reporter, ids, spool = setup
    ids.known = True
    pulse.scripted.append((400, {}, {"code": "ERR_INVALID_METRICS", "message": "x", "details": {}}))
    out = reporter.report(reporter.build([], [], "v"))
    assert not out.ok and out.rejected == 1 and spool.heartbeats == 0 and spool.rejected == 1


def test_unauthorized_heartbeat_is_spooled(setup, pulse):
    reporter, ids, spool = setup
    ids.known = True
    pulse.scripted.append((401, {}, {"code": "ERR_UNAUTHORIZED", "message": "x", "details": {}}))
    out = reporter.report(reporter.build([], [], "v"))
    assert out.spooled and spool.heartbeats == 1


def test_retries_5xx_three_attempts(setup, pulse):
    reporter, ids, spool = setup
    ids.known = True
    for _ in range(3):
        pulse.scripted.append((503, {}, {"code": "ERR_UNAVAILABLE", "message": "x", "details": {}}))
    out = reporter.report(reporter.build([], [], "v"))
    assert out.spooled
    assert sum(1 for r in pulse.requests if r[1] == "/api/v1/beacon/heartbeat") == 3


def _many_runs(n: int) -> list[RunResult]:
    base = time.time() - n
    return [run_of(TCP, [float(i % 97 + 1)], started=base + i) for i in range(n)]


def test_more_than_1000_results_go_out_in_chunks(setup, pulse):
    reporter, ids, spool = setup
    learn(ids, pulse, TCP)
    runs = _many_runs(2500)
    out = reporter.report(reporter.build(runs, runs[-1:], "v"))
    assert out.ok and out.delivered == 3 and out.accepted == 2500
    assert spool.heartbeats == 0 and spool.rejected == 0
    assert [len(hb["results"]) for hb in pulse.heartbeats] == [1000, 1000, 500]
    summary = {
        (hb["timestamp"], hb["latency_ms"], hb["packet_loss_rate"], hb["jitter_ms"])
        for hb in pulse.heartbeats
    }
    assert len(summary) == 1  # same summary and timestamp in every chunk
    assert [r["latency_ms"] for r in pulse.results()] == [float(i % 97 + 1) for i in range(2500)]


def test_more_than_1000_results_spooled_in_chunks_then_delivered(setup, pulse):
    reporter, ids, spool = setup
    learn(ids, pulse, TCP)
    pulse.stop()
    out = reporter.report(reporter.build(_many_runs(1500), [], "v"))
    assert out.spooled and spool.heartbeats == 2
    assert sorted(len(r.heartbeat["results"]) for r in spool.peek()) == [500, 1000]
    pulse.start()
    out = reporter.report(reporter.build([], [], "v"))
    assert out.ok and spool.heartbeats == 0 and spool.rejected == 0
    assert len(pulse.results()) == 1500


def test_413_on_single_endpoint_is_spooled_not_dropped(setup, pulse):
    reporter, ids, spool = setup
    learn(ids, pulse, TCP)
    pulse.scripted.append((413, {}, {"code": "ERR_PAYLOAD_TOO_LARGE", "message": "x"}))
    out = reporter.report(reporter.build([run_of(TCP, [4.0])], [], "v"))
    assert not out.ok and out.spooled and out.rejected == 0
    assert spool.heartbeats == 1 and spool.rejected == 0
    out = reporter.report(reporter.build([], [], "v"))
    assert out.ok and [r["latency_ms"] for r in pulse.results()] == [4.0]
