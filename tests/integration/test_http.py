"""HTTP endpoints of a running worker (docs/interface.md §6)."""

from __future__ import annotations

import urllib.request

from tests.support.workers import WorkerProcess


def test_health_reports_broker_and_database(worker: WorkerProcess) -> None:
    status, body = worker.health()
    assert status == 200
    assert body["status"] == "ok" and body["broker"] == "ok" and body["database"] == "ok"


def test_metrics_are_prometheus_text(worker: WorkerProcess) -> None:
    assert worker.health()[0] == 200  # the health gauge reflects the last check
    with urllib.request.urlopen(worker.base_url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    assert "# TYPE seatflow_messages_consumed_total counter" in text
    assert "seatflow_healthy 1.0" in text


def test_unknown_booking_is_404(worker: WorkerProcess) -> None:
    status, body = worker.get("/bookings/no-such-booking")
    assert status == 404 and body["booking_id"] == "no-such-booking"
