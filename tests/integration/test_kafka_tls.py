"""Kafka over TLS for real (issue #15): a plaintext Tansu behind a TLS-terminating proxy that
it advertises (tests/support/tls.py), a throwaway CA. The endpoint refuses plaintext; a
worker and `seatflow restaurants load` confirm a booking through it with
SEATFLOW_KAFKA_SECURITY_PROTOCOL=SSL; a wrong CA fails at start naming the certificate
problem and SEATFLOW_KAFKA_SSL_CAFILE."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from config.kafka import client_options
from config.settings import Settings
from producers.publisher import Publisher, make_change
from streams.connection import explain
from tests.support.kafka import json_values, read_topic
from tests.support.stack import Stack
from tests.support.tls import TlsBroker, issue_ca, issue_cert, tls_broker
from tests.support.workers import SEATFLOW_BIN, WorkerProcess, settings_env, worker_settings

pytestmark = pytest.mark.integration

RESTAURANT = {
    "restaurant_id": "r-tls", "name": "Over TLS", "slug": "over-tls", "timezone": "UTC",
    "tables": [{"table_id": "t1", "capacity": 2}, {"table_id": "t2", "capacity": 4}],
    "services": [{"name": "dinner", "start": "17:00", "end": "23:00"}],
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("tls")) as broker:
        yield broker


def tls_settings(stack: Stack, tls: TlsBroker, root: Path, cafile: Path | None = None) -> Settings:
    return worker_settings(stack, root, kafka_bootstrap=tls.bootstrap,
                           kafka_security_protocol="SSL", kafka_ssl_cafile=cafile or tls.ca.cert)


def security(settings: Settings) -> dict[str, Any]:
    return {k: v for k, v in client_options(settings).items() if k != "bootstrap_servers"}


def seatflow(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SEATFLOW_BIN), *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)


async def test_the_tls_endpoint_refuses_plaintext(
    stack: Stack, tls: TlsBroker, tmp_path: Path
) -> None:
    refused = len(tls.proxy.refused)
    plain = AIOKafkaClient(bootstrap_servers=tls.bootstrap, request_timeout_ms=5000)
    try:
        with pytest.raises(KafkaConnectionError):
            await plain.bootstrap()
    finally:
        await plain.close()
    assert await asyncio.to_thread(tls.proxy.wait_refused, refused) > refused, (
        "the proxy never refused the plaintext client")

    settings = tls_settings(stack, tls, tmp_path)
    plaintext = settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT",
                                            "kafka_ssl_cafile": None})
    assert "SEATFLOW_KAFKA_SECURITY_PROTOCOL" in await explain(plaintext)
    # And the other way round: a TLS client at a plaintext listener (the session's Tansu).
    at_plain = settings.model_copy(update={"kafka_bootstrap": stack.kafka_bootstrap})
    assert "SEATFLOW_KAFKA_SECURITY_PROTOCOL" in await explain(at_plain)

    # The same endpoint over TLS with the CA: Tansu advertises the proxy, not itself.
    client = AIOKafkaClient(**client_options(settings))
    try:
        await client.bootstrap()
        advertised = {(b.host, b.port) for b in client.cluster.brokers()}
    finally:
        await client.close()
    assert advertised == {("127.0.0.1", tls.proxy.port)}


async def test_a_worker_and_restaurants_load_confirm_a_booking_over_tls(
    stack: Stack, tls: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(stack, tls, tmp_path)
    handshakes = tls.proxy.handshakes
    config = tmp_path / "restaurant.json"
    config.write_text(json.dumps(RESTAURANT))
    loaded = await asyncio.to_thread(seatflow, settings, "restaurants", "load", str(config))
    assert loaded.returncode == 0, loaded.stderr
    assert "published 1 restaurant" in loaded.stdout

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    await asyncio.to_thread(worker.start, timeout=60.0, until_consuming=True)
    try:
        async with Publisher(settings) as publisher:
            await publisher.publish_change(make_change(
                "booking.created", "b-tls-1", "r-tls", booking_date="2030-05-04",
                start_time="19:00", party_size=2, customer_name="Ada",
                customer_email="ada@example.com"))
        deadline = time.monotonic() + 30
        confirmed: list[dict[str, Any]] = []
        while not confirmed and time.monotonic() < deadline:
            records = await read_topic(tls.bootstrap, worker.topics.booking_status, timeout=2,
                                       **security(settings))
            confirmed = [v for v in json_values(records)
                         if v["booking_id"] == "b-tls-1" and v["type"] == "booking.confirmed"]
        assert confirmed, f"no confirmation over TLS; worker log:\n{worker.log_tail()}"
        assert confirmed[0]["table_ids"] == ["t1"]
        status, health = await asyncio.to_thread(worker.health)
        assert status == 200 and health["broker"] == "ok", health
    finally:
        await asyncio.to_thread(worker.stop)
    dead = await asyncio.to_thread(seatflow, settings, "dlq", "tail")
    assert dead.returncode == 0 and "no dead letters in" in dead.stderr, dead.stderr
    # Worker, loader, publisher, reader and `dlq tail` each connected through the proxy's TLS.
    assert tls.proxy.handshakes >= handshakes + 5


async def test_a_wrong_ca_fails_at_start_naming_the_problem_and_the_setting(
    stack: Stack, tls: TlsBroker, tmp_path: Path
) -> None:
    other = issue_ca(tmp_path, "other-ca")
    settings = tls_settings(stack, tls, tmp_path, cafile=other.cert)
    config = tmp_path / "restaurant.json"
    config.write_text(json.dumps(RESTAURANT))
    for args in (["worker"], ["restaurants", "load", str(config)], ["dlq", "tail"]):
        result = await asyncio.to_thread(seatflow, settings, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert "certificate verify failed" in last, (args, last)
        assert "unable to get local issuer certificate" in last, (args, last)
        assert f"SEATFLOW_KAFKA_SSL_CAFILE ({other.cert})" in last, (args, last)
        assert "Traceback" not in result.stderr, (args, result.stderr)


async def test_mutual_tls_needs_the_client_certificate(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    config = tmp_path / "restaurant.json"
    config.write_text(json.dumps(RESTAURANT))
    with tls_broker(tmp_path_factory.mktemp("mtls"), mutual=True) as mtls:
        client = issue_cert(mtls.ca, tmp_path, "client", client=True)
        without = tls_settings(stack, mtls, tmp_path)
        refused = await asyncio.to_thread(seatflow, without, "restaurants", "load", str(config))
        assert refused.returncode == 1, refused.stderr
        assert "SEATFLOW_KAFKA_SSL_CERTFILE" in refused.stderr.strip().splitlines()[-1]
        assert await asyncio.to_thread(mtls.proxy.wait_refused, 0), (
            "the proxy accepted a client without a certificate")

        with_cert = without.model_copy(update={"kafka_ssl_certfile": client.cert,
                                               "kafka_ssl_keyfile": client.key})
        loaded = await asyncio.to_thread(seatflow, with_cert, "restaurants", "load", str(config))
        assert loaded.returncode == 0, loaded.stderr
        records = await read_topic(mtls.bootstrap, with_cert.topic_prefix + "restaurants",
                                   min_count=1, **security(with_cert))
        assert [r.key for r in records] == [b"r-tls"]
