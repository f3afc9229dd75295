"""Kafka and Redis client options from settings: secrets reach the clients, and nothing else."""

from __future__ import annotations

import ssl

import faust

from schemas.settings import Settings
from streams.kafka.app import faust_credentials
from wiring.connections import (
    kafka_client_options,
    redact,
    redis_options,
)

SECRET = "hunter2-secret"


def test_plaintext_is_the_default() -> None:
    s = Settings.from_env({})
    assert kafka_client_options(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert redis_options(s) == {}


def test_sasl_ssl_reaches_aiokafka_and_faust() -> None:
    s = Settings.from_env(
        {
            "BERTCTR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "BERTCTR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "BERTCTR_KAFKA_SASL_USERNAME": "bertctr",
            "BERTCTR_KAFKA_SASL_PASSWORD": SECRET,
        }
    )
    options = kafka_client_options(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("bertctr", SECRET)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.password == SECRET and creds.ssl_context is not None
    assert SECRET not in repr(creds) and SECRET not in repr(s) and SECRET not in str(s)


def test_ssl_without_sasl() -> None:
    s = Settings.from_env({"BERTCTR_KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert "sasl_mechanism" not in kafka_client_options(s)
    assert isinstance(faust_credentials(s), faust.SSLCredentials)


def test_redis_password_user_and_tls_files() -> None:
    s = Settings.from_env(
        {
            "BERTCTR_REDIS_URL": "rediss://cache:6380/0",
            "BERTCTR_REDIS_USERNAME": "app",
            "BERTCTR_REDIS_PASSWORD": SECRET,
            "BERTCTR_REDIS_SSL_CA_CERTS": "/etc/ca.pem",
        }
    )
    assert redis_options(s) == {
        "password": SECRET,
        "username": "app",
        "ssl_ca_certs": "/etc/ca.pem",
    }
    assert SECRET not in repr(s) and SECRET not in s.model_dump_json()


def test_redact_takes_passwords_out_of_urls() -> None:
    assert redact(f"redis://:{SECRET}@h:6379/0") == "redis://:***@h:6379/0"
    assert redact(f"rediss://user:{SECRET}@h/1") == "rediss://user:***@h/1"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
