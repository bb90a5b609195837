"""A CA bundle of one certificate, for test runs that make no TLS connection to the outside.

Every httpx/httpx2 client (so every openai or anthropic client) builds an SSL context when it is
created, and loads the whole CA bundle into it (``SSL_CERT_FILE``, else certifi's or OpenSSL's):
about 150 certificates, 15 to 30 ms of CPU per client. The suites build thousands of clients and
talk only to loopback servers over plain HTTP; the anthropic SDK's own suite spent more than half
its CPU time loading that bundle (``make test`` measured it: see the README's "Development").
Pointing ``SSL_CERT_FILE`` at a bundle of one certificate makes each context cost a fraction of a
millisecond; the clients are built as before (``verify=True``, a default context, the same code).

A test that needs a CA of its own (``tests/frontends/test_serve_proxy.py``) sets ``SSL_CERT_FILE``
itself, as before; one that starts a tool which reaches the real network (``uv build`` in
``tests/test_install.py``) gives it the machine's settings back (:func:`with_machine_ca`).
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path

CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_machine: dict[str, str] = {}  # the machine's CA_VARIABLES, before the small bundle replaced them

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----\r?\n?", re.S)


def _bundles() -> list[str]:
    """Where a CA bundle may be found: certifi's, ``SSL_CERT_FILE``, OpenSSL's compiled-in file."""
    found = []
    try:
        import certifi

        found.append(certifi.where())
    except ImportError:
        pass
    found += [os.environ.get("SSL_CERT_FILE", ""), ssl.get_default_verify_paths().openssl_cafile or ""]
    return [path for path in found if path and os.path.isfile(path)]


def one_certificate_bundle(path: Path) -> Path | None:
    """Write the first certificate of the machine's CA bundle to ``path``; ``None`` (nothing
    written) when no bundle is found, and the clients keep loading the default one."""
    for bundle in _bundles():
        match = _PEM.search(Path(bundle).read_bytes())
        if match:
            path.write_bytes(match.group(0).rstrip(b"\r\n") + b"\n")
            ssl.create_default_context(cafile=str(path))  # a bundle that does not load fails here, not in a test
            return path
    return None


def remember_machine_ca() -> None:
    """Keep the machine's ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``, before they are replaced."""
    _machine.clear()
    _machine.update({name: os.environ[name] for name in CA_VARIABLES if name in os.environ})


def with_machine_ca(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the machine's CA settings (as :func:`remember_machine_ca` kept them) instead
    of the small bundle: for a tool that connects over TLS to the real network."""
    env = {k: v for k, v in env.items() if k not in CA_VARIABLES}
    return {**env, **_machine}
