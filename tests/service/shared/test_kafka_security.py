"""Kafka TLS and SASL: settings → aiokafka options, the production refusal, and a real TLS connection.

Tansu 0.6.0 (the embedded broker) cannot serve TLS itself: its ``--cert`` and ``--key`` flags sit in
one clap group, so the broker refuses to start with both, and with one it listens in plain TCP. The
TLS test therefore puts a TLS terminator (the standard library's, requiring client certificates)
in front of a real Tansu that advertises the terminator's port, as a managed Kafka's TLS listener
would be reached. Its ``--authentication`` (SCRAM) cannot be tried either: with memory storage no
user can be created once authentication is on, so SASL is covered by the option mapping only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import sys

import pytest
import trustme
from aiokafka.errors import KafkaConnectionError
from crm_shared.bus.kafka import connection_options, ensure_topics, new_consumer, new_producer
from crm_shared.cli import main as crm_main
from crm_shared.devstack import EmbeddedBroker, free_port
from crm_shared.settings import KafkaConnection, KafkaSettings, ServiceSettings
from pydantic import ValidationError

from tests.harness.infra import TEST_PII_KEY

REAL_SECRET = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"


@pytest.fixture
def pki(tmp_path):
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, as PEM files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("crm-profile@clients.example")
    files = {"ca": tmp_path / "ca.pem", "client_cert": tmp_path / "client.pem", "client_key": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return ca, server, files


def test_plaintext_is_the_default_and_maps_to_no_tls_and_no_sasl():
    assert connection_options("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092",
                                                     "security_protocol": "PLAINTEXT"}
    assert connection_options(KafkaSettings(_env_file=None).kafka) == {"bootstrap_servers": "127.0.0.1:9092",
                                                                       "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_settings_from_the_environment_map_to_aiokafka_options_with_a_verifying_ssl_context(
        monkeypatch, pki):
    _, _, files = pki
    for name, value in {"KAFKA_BOOTSTRAP_SERVERS": "b-1.kafka.example:9096,b-2.kafka.example:9096",
                        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": "crm-profile", "KAFKA_SASL_PASSWORD": "pw-from-the-vault",
                        "KAFKA_SSL_CAFILE": str(files["ca"]), "KAFKA_SSL_CERTFILE": str(files["client_cert"]),
                        "KAFKA_SSL_KEYFILE": str(files["client_key"])}.items():
        monkeypatch.setenv(name, value)
    options = connection_options(ServiceSettings(service_name="profile").kafka)
    context = options.pop("ssl_context")
    assert options == {"bootstrap_servers": "b-1.kafka.example:9096,b-2.kafka.example:9096",
                       "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "crm-profile", "sasl_plain_password": "pw-from-the-vault"}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # The configured CA is the one trusted (and the client certificate loaded without error).
    assert [dict(pair[0] for pair in c["subject"]) for c in context.get_ca_certs()] == [
        dict(pair[0] for pair in ssl._ssl._test_decode_cert(str(files["ca"]))["subject"])]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_sasl_mechanism_maps_without_tls_options_on_sasl_plaintext(mechanism):
    kafka = KafkaConnection(bootstrap_servers="127.0.0.1:9092", security_protocol="SASL_PLAINTEXT",
                            sasl_mechanism=mechanism, sasl_username="u", sasl_password="p")
    assert connection_options(kafka) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_PLAINTEXT",
                                         "sasl_mechanism": mechanism, "sasl_plain_username": "u",
                                         "sasl_plain_password": "p"}


def test_incomplete_or_contradictory_kafka_security_settings_are_refused(pki):
    _, _, files = pki
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PAS"):
        KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN")
    with pytest.raises(ValidationError, match="KAFKA_SASL_\\* is set but KAFKA_SECURITY_PROTOCOL=SSL"):
        KafkaSettings(kafka_security_protocol="SSL", kafka_sasl_username="u")
    with pytest.raises(ValidationError, match="KAFKA_SSL_\\* is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"):
        KafkaSettings(kafka_ssl_cafile=files["ca"])
    with pytest.raises(ValidationError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"):
        KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_certfile=files["client_cert"])
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI",
                      kafka_sasl_username="u", kafka_sasl_password="p")


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_production_refuses_an_unencrypted_connection_to_a_broker_off_this_host(protocol):
    sasl = {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "u", "kafka_sasl_password": "p"} \
        if protocol == "SASL_PLAINTEXT" else {}
    with pytest.raises(ValidationError, match=f"KAFKA_SECURITY_PROTOCOL={protocol} would send events unencrypted "
                                              "to 127.0.0.1:9092,kafka:9092"):
        ServiceSettings(service_name="profile", environment="prod", identity_key=REAL_SECRET,
                        kafka_bootstrap_servers="127.0.0.1:9092,kafka:9092", kafka_security_protocol=protocol, **sasl)


def test_production_accepts_tls_a_loopback_broker_or_an_explicit_waiver():
    prod = {"service_name": "profile", "environment": "prod", "identity_key": REAL_SECRET}
    for loopback in ("127.0.0.1:9092", "localhost:9092,127.0.0.2:9093", "[::1]:9092"):
        assert ServiceSettings(**prod, kafka_bootstrap_servers=loopback).kafka.on_loopback
    assert ServiceSettings(**prod, kafka_bootstrap_servers="kafka:9093", kafka_security_protocol="SSL").kafka.encrypted
    assert ServiceSettings(**prod, kafka_bootstrap_servers="kafka:9092", kafka_allow_plaintext=True)
    # Dev and test talk to whatever broker they are given.
    assert ServiceSettings(service_name="profile", kafka_bootstrap_servers="kafka:9092")


def test_the_cli_refuses_a_plaintext_broker_in_production_before_connecting(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    refusal = r"^crm: KAFKA_SECURITY_PROTOCOL=PLAINTEXT would send events unencrypted to kafka\.example:9092"
    with pytest.raises(SystemExit, match=refusal):
        crm_main(["topics"])


def test_a_production_service_process_refuses_to_start_with_a_plaintext_broker_off_this_host():
    env = {**os.environ, "ENVIRONMENT": "prod", "IDENTITY_KEY": REAL_SECRET, "PII_KEY": TEST_PII_KEY,
           "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092", "DATABASE_URL": "postgresql://crm@db.example/crm"}
    env.pop("AUTH_SECRET", None)
    started = subprocess.run([sys.executable, "-m", "crm_shared.cli", "serve", "loyalty"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip() == (
        "crm serve loyalty: refusing to start: KAFKA_SECURITY_PROTOCOL=PLAINTEXT would send events unencrypted to "
        "kafka.example:9092: use SSL or SASL_SSL in production (or set KAFKA_ALLOW_PLAINTEXT for a broker on a "
        "private network you control)")


@contextlib.asynccontextmanager
async def tls_terminator(port: int, upstream_port: int, context: ssl.SSLContext):
    """TLS in front of a plain TCP port (what Tansu 0.6.0 cannot do itself)."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    try:
        yield
    finally:
        server.close()


async def test_producer_admin_and_consumer_reach_the_broker_over_mutual_tls_and_verify_its_certificate(pki, tmp_path):
    ca, server_cert, files = pki
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the client certificate is checked too

    tls_port = free_port()
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "tansu.log", advertised_port=tls_port).start()
    kafka = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{tls_port}", kafka_security_protocol="SSL",
                          kafka_ssl_cafile=files["ca"], kafka_ssl_certfile=files["client_cert"],
                          kafka_ssl_keyfile=files["client_key"]).kafka
    try:
        async with tls_terminator(tls_port, broker.port, server_context):
            assert await ensure_topics(kafka, ["crm.tls-check"], partitions=1) == ["crm.tls-check"]
            producer = new_producer(kafka, "tls-test")
            await producer.start()
            try:
                sent = await producer.send_and_wait("crm.tls-check", key=b"k", value=b"over tls")
            finally:
                await producer.stop()
            consumer = new_consumer(kafka, None, ["crm.tls-check"], fetch_max_wait_ms=25, client_id="tls-test")
            await consumer.start()
            try:
                records = (await consumer.getmany(timeout_ms=10_000)).values()
            finally:
                await consumer.stop()
            assert [(r.offset, r.value) for batch in records for r in batch] == [(sent.offset, b"over tls")]

            # A client that does not trust the broker's CA does not connect.
            stranger = tmp_path / "other-ca.pem"
            trustme.CA().cert_pem.write_to_path(str(stranger))
            untrusting = new_producer(kafka.model_copy(update={"ssl_cafile": stranger}), "tls-test")
            with pytest.raises(KafkaConnectionError):
                await untrusting.start()
            await untrusting.stop()
    finally:
        broker.stop()
