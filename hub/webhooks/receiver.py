"""A webhook receiver on loopback, over TLS, for the tests and `bench-webhooks`.

It does what a client system's endpoint must: verifies each delivery's signature and timestamp
and refuses a replayed id (`hub.webhooks.signing.verify`), then answers as it is told (a status
per path, in turn, and a delay). Its certificate comes from a CA made on the spot
(`make_tls`); the hub is pointed at that CA with HUB_WEBHOOK_CA_FILE, so verification stays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.webhooks.signing import ReplayGuard, WebhookVerificationError, verify


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path) -> TlsFiles:
    """A CA and a certificate it signs for 127.0.0.1 and localhost, written to `directory`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub test webhook CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca_file=directory / "webhook-ca.pem",
        cert_file=directory / "webhook-cert.pem",
        key_file=directory / "webhook-key.pem",
    )
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclasses.dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    refused: str | None  # why verification failed, if it did
    at: float  # time.monotonic() on arrival


class Receiver:
    """An ASGI endpoint: POST /<path>, verified with the path's secret, answered as scripted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: dict[str, str] = {}
        self.scripts: dict[str, deque[int]] = defaultdict(deque)
        self.delays: dict[str, float] = {}
        self.received: list[Received] = []
        self._replays: dict[str, ReplayGuard] = defaultdict(ReplayGuard)

    def expect(self, path: str, secret: str) -> None:
        with self._lock:
            self.secrets[path] = secret

    def script(self, path: str, *statuses: int, delay: float = 0.0) -> None:
        """Answer the next deliveries to `path` with these statuses (then 200), after `delay`."""
        with self._lock:
            self.scripts[path].extend(statuses)
            self.delays[path] = delay

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def accepted(self, path: str) -> list[Received]:
        return [r for r in self.at(path) if r.refused is None and 200 <= r.status < 300]  # noqa: PLR2004

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan="off": only requests come here
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"].lstrip("/")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        arrived = time.monotonic()
        with self._lock:
            delay = self.delays.get(path, 0.0)
        if delay:
            await asyncio.sleep(delay)
        status, refused = self._answer(path, headers, body)
        with self._lock:
            self.received.append(Received(path, headers, body, status, refused, arrived))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
        with self._lock:
            secret = self.secrets.get(path)
            scripted = self.scripts[path].popleft() if self.scripts[path] else 200
            if secret is None:
                return 404, "no secret for this path"
            try:
                # A retry reuses its id: only an id that was accepted (2xx) is a replay.
                guard = self._replays[path] if 200 <= scripted < 300 else None  # noqa: PLR2004
                verify(secret, headers, body, replays=guard)
            except WebhookVerificationError as error:
                return 400, str(error)
        return scripted, None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(receiver: Receiver, tls: TlsFiles) -> Iterator[str]:
    """Serve `receiver` on loopback over TLS in a thread; yield its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        receiver,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        lifespan="off",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "the webhook receiver did not start"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
