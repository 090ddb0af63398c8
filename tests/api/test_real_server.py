"""The real server over sockets: TLS and mTLS, 100 MB bodies, slow bodies, the CLI client."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api.server import Server
from tests.conftest import make_event


def make_cert(path_prefix, common_name: str, issuer=None, ca: bool = False):
    """A small PKI: (cert_path, key_path, cert, key) signed by ``issuer`` or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_cert, signer_key = (issuer[2], issuer[3]) if issuer else (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(signer_cert.subject if signer_cert else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            __import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = f"{path_prefix}.crt", f"{path_prefix}.key"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path, cert, key


@pytest.fixture
def pki(tmp_path):
    ca = make_cert(tmp_path / "ca", "trailseal test CA", ca=True)
    return {"ca": ca, "server": make_cert(tmp_path / "server", "127.0.0.1", issuer=ca),
            "client": make_cert(tmp_path / "client", "collector", issuer=ca)}


def test_tls_with_client_certificates(data_dir, pki):
    server = Server(data_dir, "--tls-cert", pki["server"][0], "--tls-key", pki["server"][1],
                    "--tls-client-ca", pki["ca"][0], scheme="https")
    context = ssl.create_default_context(cafile=pki["ca"][0])
    context.load_cert_chain(pki["client"][0], pki["client"][1])
    server.start(verify=context)
    try:
        with httpx.Client(verify=context) as client:
            response = client.post(server.url + "/v1/events", json=[make_event(1)],
                                   headers={"Authorization": f"Bearer {server.admin}"})
            assert response.status_code == 200 and response.json()["accepted"] == 1
        no_cert = ssl.create_default_context(cafile=pki["ca"][0])
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url + "/healthz", verify=no_cert)
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz", verify=True)  # not a publicly trusted certificate
    finally:
        server.stop()


@pytest.fixture
def live(data_dir):
    server = Server(data_dir, env={"TRAILSEAL_SERVER__BODY_TIMEOUT_SECONDS": "2"}).start()
    yield server
    server.stop()


def test_100mb_body_is_refused_without_reading_it_all(live):
    headers = {"Authorization": f"Bearer {live.admin}", "Content-Type": "application/json"}
    declared = httpx.post(live.url + "/v1/events", content=b"x" * (100 * 1024 * 1024), headers=headers, timeout=60)
    assert declared.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"x" * (1024 * 1024)

    streamed = httpx.post(live.url + "/v1/events", content=chunks(), headers=headers, timeout=60)
    assert streamed.status_code == 413 and "limit" in streamed.json()["error"]
    assert httpx.get(live.url + "/healthz").status_code == 200


def test_slow_body_gets_408_and_the_server_keeps_serving(live):
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + live.admin.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
        started = time.monotonic()
        assert httpx.get(live.url + "/healthz").status_code == 200  # not blocked meanwhile
        sock.settimeout(10)
        answer = sock.recv(4096)
        assert b"408" in answer.split(b"\r\n")[0] and time.monotonic() - started < 8


def test_cli_send_and_search_against_the_server(live, tmp_path):
    path = tmp_path / "events.ndjson"
    lines = [json.dumps(make_event(i)) for i in range(1200)] + ['{"broken": ']
    path.write_text("\n".join(lines) + "\n")
    env = {"TRAILSEAL_TOKEN": live.admin, "TRAILSEAL_URL": live.url}
    import os

    sent = subprocess.run([sys.executable, "-m", "trailseal.cli", "send", str(path)], capture_output=True,
                          text=True, env={**os.environ, **env})
    assert sent.returncode == 1, sent.stderr
    assert "sealed 1200 events, rejected 1" in sent.stdout
    assert "line 1201: " in sent.stderr
    found = subprocess.run([sys.executable, "-m", "trailseal.cli", "search", "--action", "user.*", "--limit", "5"],
                           capture_output=True, text=True, env={**os.environ, **env})
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert found.returncode == 0 and len(rows) == 5
    assert all(r["event"]["action"].startswith("user.") for r in rows)
