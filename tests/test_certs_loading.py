"""Loading keys and certificates: PEM and PKCS#12, encrypted keys, passphrases from the environment or a
file, and every problem named with its file (throwaway CAs made here, never committed keys).

``Pki`` is shared with the other certificate tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from lienthong.certs import Passphrase, TlsFiles, build_client, load_credential
from lienthong.certs.keys import load_key
from lienthong.config import parse_config
from lienthong.errors import ConfigError

PASS = "correct horse battery staple"


class Pki:
    """A throwaway CA writing certificates and keys into ``where``, in the forms a config may name."""

    def __init__(self, where: Path, ca: trustme.CA | None = None) -> None:
        self.where = where
        self.ca = ca or trustme.CA()

    def ca_file(self, name: str = "ca.pem") -> Path:
        path = self.where / name
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def issue(self, identity: str, **dates: Any) -> trustme.LeafCert:
        """A certificate for ``identity``, whose subject is ``CN=<identity>,OU=certs,O=Lienthong tests``."""
        return self.ca.issue_cert(
            identity,
            common_name=identity,
            organization_name="Lienthong tests",
            organization_unit_name="certs",
            **dates,
        )

    def pem(self, name: str, cert: trustme.LeafCert, *, password: str | None = None) -> tuple[Path, Path]:
        """``name``.pem (the certificate) and ``name``.key (the key, encrypted with ``password``)."""
        crt, key = self.where / f"{name}.pem", self.where / f"{name}.key"
        crt.write_bytes(cert.cert_chain_pems[0].bytes())
        key.write_bytes(self._key_pem(cert, password))
        return crt, key

    def p12(self, name: str, cert: trustme.LeafCert, password: str) -> Path:
        path = self.where / f"{name}.p12"
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
        leaf = _certificate(cert)
        blob = pkcs12.serialize_key_and_certificates(
            name.encode(),
            key,  # type: ignore[arg-type]
            leaf,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        path.write_bytes(blob)
        return path

    @staticmethod
    def _key_pem(cert: trustme.LeafCert, password: str | None) -> bytes:
        if password is None:
            return cert.private_key_pem.bytes()
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )


def _certificate(cert: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())


def expired(pki: Pki) -> trustme.LeafCert:
    now = datetime.now(UTC)
    return pki.issue(
        "client.example", not_before=now - timedelta(days=400), not_after=now - timedelta(days=3)
    )


def not_yet_valid(pki: Pki) -> trustme.LeafCert:
    now = datetime.now(UTC)
    return pki.issue("client.example", not_before=now + timedelta(days=2), not_after=now + timedelta(days=90))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def test_a_pem_certificate_loads_with_its_key_in_a_file_of_its_own_or_in_the_same_file(pki: Pki) -> None:
    cert, key = pki.pem("client", pki.issue("client.example"))
    assert load_credential(cert, key).certificate.subject.rfc4514_string()
    both = pki.where / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    assert load_credential(both).key.public_key() == load_credential(cert, key).key.public_key()


def test_an_encrypted_key_needs_its_passphrase_and_says_when_it_is_wrong(pki: Pki) -> None:
    cert, key = pki.pem("client", pki.issue("client.example"), password=PASS)
    assert load_credential(cert, key, passphrase=PASS.encode())
    with pytest.raises(ConfigError, match=r"client.key the key is encrypted: give its passphrase"):
        load_credential(cert, key)
    with pytest.raises(ConfigError, match=r"client.key wrong passphrase for the key"):
        load_credential(cert, key, passphrase=b"wrong")


def test_a_pkcs12_file_loads_with_its_passphrase_and_says_when_it_is_wrong_or_missing(pki: Pki) -> None:
    bundle = pki.p12("client", pki.issue("client.example"), PASS)
    credential = load_credential(bundle, passphrase=PASS.encode())
    assert credential.certificate.public_key() == credential.key.public_key()
    with pytest.raises(ConfigError, match=r"client.p12 wrong passphrase \(read as PKCS#12\)"):
        load_credential(bundle, passphrase=b"wrong")
    with pytest.raises(ConfigError, match=r"client.p12 not a PKCS#12 file, or it needs a passphrase"):
        load_credential(bundle)


def test_a_file_that_is_not_a_key_and_a_key_of_another_certificate_are_refused_by_name(pki: Pki) -> None:
    cert, _ = pki.pem("client", pki.issue("client.example"))
    _, other_key = pki.pem("other", pki.issue("other.example"))
    with pytest.raises(ConfigError, match=r"client.pem not a key: no PEM private key block"):
        load_key(cert, None)
    with pytest.raises(
        ConfigError, match=r"client.pem the certificate and key do not load together: .*other"
    ):
        load_credential(cert, other_key)
    garbled = pki.where / "garbled.key"
    garbled.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"garbled.key not a key \(the PEM block does not decode\)"):
        load_key(garbled, None)


def test_a_client_certificate_not_yet_valid_or_expired_is_refused_with_its_dates(pki: Pki) -> None:
    for made, why in ((expired(pki), "expired on"), (not_yet_valid(pki), "is not valid before")):
        cert, key = pki.pem("dated", made)
        with pytest.raises(ConfigError, match=rf"dated.pem the certificate {why} \d{{4}}-\d\d-\d\d"):
            build_client(TlsFiles(cert_file=cert, key_file=key), environ={})


def test_a_passphrase_comes_from_the_named_variable_or_file_and_each_absence_is_named(tmp_path: Path) -> None:
    assert Passphrase(env="CLIENT_KEY_PASS").read({"CLIENT_KEY_PASS": PASS}) == PASS.encode()
    with pytest.raises(ConfigError, match=r"\$CLIENT_KEY_PASS the key's passphrase variable is not set"):
        Passphrase(env="CLIENT_KEY_PASS").read({})
    file = tmp_path / "pass.txt"
    file.write_text(PASS + "\n")
    assert Passphrase(file=file).read({}) == PASS.encode()  # the editor's final newline is not part of it
    file.write_text("\n")
    with pytest.raises(ConfigError, match=r"pass.txt the passphrase file is empty"):
        Passphrase(file=file).read({})
    with pytest.raises(ConfigError, match=r"nowhere.txt cannot read"):
        Passphrase(file=tmp_path / "nowhere.txt").read({})
    assert Passphrase().read({"CLIENT_KEY_PASS": PASS}) is None


def test_an_encrypted_client_key_reaches_a_tls_context_with_its_passphrase_from_the_environment(
    pki: Pki,
) -> None:
    cert, key = pki.pem("client", pki.issue("client.example"), password=PASS)
    files = TlsFiles(cert_file=cert, key_file=key, passphrase=Passphrase(env="KEY_PASS"))
    assert build_client(files, environ={"KEY_PASS": PASS})
    with pytest.raises(ConfigError, match=r"\$KEY_PASS"):
        build_client(files, environ={})
    bundle = pki.p12("bundle", pki.issue("client.example"), PASS)
    assert build_client(TlsFiles(cert_file=bundle, passphrase=Passphrase(env="P")), environ={"P": PASS})


CONFIG = """
destinations:
  province:
    kind: provincial
    base_url: https://province.example
    secret: s
    tls: {tls}
"""


def test_the_config_takes_passphrases_by_reference_only_and_one_source_at_a_time() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(CONFIG.format(tls="{client_cert: c.p12, passphrase: secret}"), file="c.yaml", env={})
    with pytest.raises(ConfigError, match="give passphrase_env or passphrase_file, not both"):
        parse_config(
            CONFIG.format(tls="{client_cert: c.p12, passphrase_env: P, passphrase_file: p.txt}"),
            file="c.yaml",
            env={},
        )
    with pytest.raises(ConfigError, match="system_trust: false needs a ca_file"):
        parse_config(CONFIG.format(tls="{system_trust: false}"), file="c.yaml", env={})
    with pytest.raises(ConfigError, match="min_version"):
        parse_config(CONFIG.format(tls="{min_version: '1.1'}"), file="c.yaml", env={})
    config = parse_config(CONFIG.format(tls="{ca_file: ca.pem}"), file="c.yaml", env={})
    tls = config.destinations["province"].tls
    assert tls is not None
    assert (tls.min_version, tls.system_trust) == ("1.2", True)  # the old keys alone: as before


def test_a_certificate_tls_refuses_is_named_with_openssls_reason(tmp_path: Path) -> None:
    # OpenSSL's default security level refuses a 1024-bit RSA key: loadable by cryptography, unusable by ssl.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name.from_rfc4514_string("CN=weak.example")
    now = datetime.now(UTC)
    weak = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert = tmp_path / "weak.pem"
    cert.write_bytes(
        weak.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConfigError, match=r"weak.pem TLS refuses the certificate: EE_KEY_TOO_SMALL"):
        build_client(TlsFiles(cert_file=cert), environ={})
