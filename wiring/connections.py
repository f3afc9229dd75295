"""Connections to Kafka and Redis, secured as the settings say: the one place clients are made.

Production Kafka wants SASL and/or TLS, production Redis a password (AUTH,
ACL users) and often TLS (``rediss://``). Every process (workers, the API,
the retrain job, the CLI) builds its clients here, so a setting set once in
the environment reaches all of them, and the secrets stay in
:class:`~pydantic.SecretStr` until the moment a client needs them: they are
never in a log line, ``bertctr stats``, ``/metrics`` or an error message
(:func:`redact` takes them out of URLs that are shown).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis

from schemas.settings import Settings

__all__ = [
    "async_redis",
    "kafka_client_options",
    "kafka_ssl_context",
    "redact",
    "redis_options",
    "sync_redis",
]


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for Kafka: the CA file, and the client certificate if one is set."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin clients."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = kafka_ssl_context(settings)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def redis_options(settings: Settings) -> dict[str, Any]:
    """AUTH and TLS keyword arguments for redis-py, from the settings."""
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_url.startswith("rediss://"):
        if settings.redis_ssl_ca_certs:
            options["ssl_ca_certs"] = settings.redis_ssl_ca_certs
        if settings.redis_ssl_certfile:
            options["ssl_certfile"] = settings.redis_ssl_certfile
            options["ssl_keyfile"] = settings.redis_ssl_keyfile
    return options


def async_redis(settings: Settings, **extra: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``BERTCTR_REDIS_URL`` with AUTH and TLS as configured."""
    return aioredis.Redis.from_url(settings.redis_url, **redis_options(settings), **extra)


def sync_redis(settings: Settings, **extra: Any) -> redis.Redis:
    """The blocking twin of :func:`async_redis` (CLI and harness code)."""
    return redis.Redis.from_url(settings.redis_url, **redis_options(settings), **extra)
