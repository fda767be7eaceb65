"""certs.py - test certificates made with certtool (gnutls-bin), once per process.

    import certs
    c = certs.get()                 # a Certs; None when certtool is missing
    c.ca                            # PEM of the test CA (a tls_trust_file)
    c.good                          # (cert, key) for localhost + IP 127.0.0.1, by the CA
    c.wrong                         # (cert, key) for wrong.example only, by the CA
    c.expired                       # (cert, key) for localhost/127.0.0.1, by the CA,
                                    #   valid 2020-01-01 .. 2020-12-31 only
    c.selfsigned                    # (cert, key) self-signed, localhost/127.0.0.1
    c.client_ca                     # PEM of the CA that signs client certificates
    c.client                        # (cert, key) client certificate by client_ca
    c.context(which, ...)           # an ssl.SSLContext serving one of those pairs
    certs.der_sha256(certfile)      # sha256 of the certificate's DER, hex
    certs.spki_sha256(certfile)     # sha256 of its SubjectPublicKeyInfo, hex

Everything lives in a temporary directory removed at exit.  ECDSA keys
keep generation fast (well under a second for the whole set).
"""

import atexit
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None

CERTTOOL = shutil.which("certtool")
_cache = None


def _certtool(*args, timeout=30):
    subprocess.run([CERTTOOL] + list(args), check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def pem_to_der(path):
    with open(path, "rb") as f:
        text = f.read()
    begin = text.index(b"-----BEGIN CERTIFICATE-----")
    end = text.index(b"-----END CERTIFICATE-----", begin)
    body = text[begin + len(b"-----BEGIN CERTIFICATE-----"):end]
    return base64.b64decode(b"".join(body.split()))


def der_sha256(certfile):
    """SHA-256 of the first certificate in a PEM file, lower-case hex."""
    return hashlib.sha256(pem_to_der(certfile)).hexdigest()


def _der_read(data, pos):
    """(tag, header length, content length) of the DER element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    if n < 0x80:
        return tag, 2, n
    k = n & 0x7F
    length = int.from_bytes(data[pos + 2:pos + 2 + k], "big")
    return tag, 2 + k, length


def spki_der(certfile):
    """The DER SubjectPublicKeyInfo of the certificate: Certificate ->
    tbsCertificate -> [version], serial, signature, issuer, validity,
    subject, subjectPublicKeyInfo."""
    der = pem_to_der(certfile)
    _, h, _ = _der_read(der, 0)                 # Certificate SEQUENCE
    pos = h
    tag, h, _ = _der_read(der, pos)             # tbsCertificate SEQUENCE
    pos += h
    tag, h, n = _der_read(der, pos)
    if tag == 0xA0:                             # [0] version
        pos += h + n
    for _ in range(5):                          # serial .. subject
        tag, h, n = _der_read(der, pos)
        pos += h + n
    tag, h, n = _der_read(der, pos)
    if tag != 0x30:
        raise ValueError("unexpected DER layout in %s" % certfile)
    return der[pos:pos + h + n]


def spki_sha256(certfile):
    return hashlib.sha256(spki_der(certfile)).hexdigest()


def certtool_pubkey_sha256(certfile):
    """certtool's own view of the SPKI hash (cross-check of spki_sha256)."""
    out = subprocess.run([CERTTOOL, "--certificate-info", "--infile", certfile],
                         check=True, timeout=30, capture_output=True).stdout
    lines = out.decode("latin-1").splitlines()
    for i, l in enumerate(lines):
        if l.strip().startswith("Public Key ID:"):
            for m in lines[i + 1:i + 4]:
                m = m.strip()
                if m.startswith("sha256:"):
                    return m[7:].lower()
    return None


class Certs:
    def __init__(self, directory):
        self.dir = directory
        self.ca, self.ca_key = self._ca("pushmail test CA", "ca")
        self.client_ca, self.client_ca_key = self._ca("pushmail client CA", "clientca")
        self.good = self._leaf("good", "localhost", ["localhost"], ["127.0.0.1"])
        self.wrong = self._leaf("wrong", "wrong.example", ["wrong.example"], [])
        self.expired = self._leaf("expired", "localhost", ["localhost"], ["127.0.0.1"],
                                  dates=("2020-01-01 00:00:00", "2020-12-31 00:00:00"))
        self.selfsigned = self._leaf("self", "localhost", ["localhost"], ["127.0.0.1"],
                                     signer=None)
        self.client = self._leaf("client", "pushmail test client", [], [],
                                 signer=(self.client_ca, self.client_ca_key),
                                 usage="tls_www_client")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        key = self.path(name + ".key")
        _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
        return key

    def _template(self, name, lines):
        tmpl = self.path(name + ".tmpl")
        with open(tmpl, "w") as f:
            f.write("\n".join(lines) + "\n")
        return tmpl

    def _ca(self, cn, name):
        key = self._key(name)
        tmpl = self._template(name, ['cn = "%s"' % cn, "ca", "cert_signing_key",
                                     "crl_signing_key", "expiration_days = 30",
                                     "serial = 1"])
        cert = self.path(name + ".pem")
        _certtool("--generate-self-signed", "--load-privkey", key,
                  "--template", tmpl, "--outfile", cert)
        return cert, key

    def _leaf(self, name, cn, dns, ips, dates=None, signer=True,
              usage="tls_www_server"):
        key = self._key(name)
        lines = ['cn = "%s"' % cn, usage, "signing_key", "encryption_key"]
        lines += ['dns_name = "%s"' % d for d in dns]
        lines += ['ip_address = "%s"' % i for i in ips]
        if dates:
            lines += ['activation_date = "%s"' % dates[0],
                      'expiration_date = "%s"' % dates[1]]
        else:
            lines.append("expiration_days = 30")
        tmpl = self._template(name, lines)
        cert = self.path(name + ".pem")
        if signer is None:
            _certtool("--generate-self-signed", "--load-privkey", key,
                      "--template", tmpl, "--outfile", cert)
        else:
            ca, ca_key = (self.ca, self.ca_key) if signer is True else signer
            _certtool("--generate-certificate", "--load-privkey", key,
                      "--load-ca-certificate", ca, "--load-ca-privkey", ca_key,
                      "--template", tmpl, "--outfile", cert)
        return cert, key

    def context(self, pair, max_version=None, client_ca=None, require_client=False):
        """A server-side SSLContext for (cert, key); client_ca asks for a client
        certificate (required when require_client, else optional)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair[0], pair[1])
        if max_version is not None:
            ctx.maximum_version = max_version
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
        return ctx


def get():
    """The process's Certs (made on first use), or None without certtool."""
    global _cache
    if _cache is None:
        if CERTTOOL is None or ssl is None:
            return None
        d = tempfile.mkdtemp(prefix="pushmail-certs-")
        if not os.environ.get("PUSHMAIL_TEST_KEEP"):
            atexit.register(shutil.rmtree, d, True)
        _cache = Certs(d)
    return _cache
