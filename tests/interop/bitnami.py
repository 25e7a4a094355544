#!/usr/bin/python3
"""bitnami.py - an independent implementation of Bitnami Sealed Secrets, the judge of latchkey's.

Written from the format's description and sealed-secrets' own sources (pkg/crypto/crypto.go,
pkg/apis/sealedsecrets/v1alpha1/sealedsecret_expansion.go, pkg/crypto/keys.go,
pkg/controller/keys.go, pkg/kubeseal), with the `cryptography` package only: it shares no
code, and no reading of the code, with latchkey's C implementation.

One value of spec.encryptedData:

    blob   = BE16(len(rsa_ct)) || rsa_ct || AES-256-GCM(K, nonce = 12 zero bytes, no AAD)(value) || tag
    rsa_ct = RSA-OAEP(SHA-256, MGF1-SHA-256, label)(K), K = 32 fresh random bytes
    label  = "<namespace>/<name>" (strict) | "<namespace>" (namespace-wide) | "" (cluster-wide)
    value  = base64 (standard alphabet, padded) of blob

The scope of a SealedSecret is read from its own metadata.annotations: cluster-wide first,
then namespace-wide, each only when the value is exactly "true"; else strict.

Commands (manifests are JSON, or YAML when python3-yaml is installed; output is JSON unless
--format yaml):

    keygen --out-dir DIR [--bits 4096] [--namespace kube-system] [--cn ""] [--days 3650]
        tls.key (PKCS#1 PEM), tls.crt (self-signed, as the controller makes it) and
        key-secret.json (the controller's key Secret) in DIR, which must not hold them yet.
    keygen KEY CERT [--bits N]
        the older form: the key and the certificate at the given paths.
    seal --cert CRT [--scope strict|namespace-wide|cluster-wide] [--namespace NS] [--name NAME]
         [--api bitnami.com/v1alpha1|latchkey.io/v1] [--format json|yaml] < secret > sealedsecret
        As kubeseal: --name/--namespace override the Secret's; a --scope other than strict
        rewrites its scope annotations, else they decide; the template is its metadata
        without the last-applied annotations, ownerReferences and server-set fields.
    unseal --key KEY [--key KEY...] < sealedsecret > secret
        KEY: a PEM private key (PKCS#1 or PKCS#8), or a key Secret manifest (a Secret, a List
        of them, or several YAML documents). Every key is tried for every value.

Exit status: 0 done, 1 a value did not open or an input was refused, 2 usage.
Messages name keys, scopes and files, never a value. Run it with the Debian interpreter,
/usr/bin/python3, which sees python3-cryptography.
"""
import argparse
import base64
import binascii
import copy
import datetime
import json
import os
import secrets
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# cryptography.x509 and yaml are imported where they are needed: together they are most
# of the start-up time, and the integration suite runs this script a hundred times.

PROG = "bitnami.py"
API_BITNAMI = "bitnami.com/v1alpha1"
API_LATCHKEY = "latchkey.io/v1"
CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"
NAMESPACE_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
# kubeseal drops these from the template: they can hold the whole Secret in plain text.
LAST_APPLIED = ("kubectl.kubernetes.io/last-applied-configuration",
                "kubecfg.ksonnet.io/last-applied-configuration")
# Read-only metadata the API server sets; kubeseal strips it before sealing.
SERVER_FIELDS = ("uid", "resourceVersion", "selfLink", "generation", "creationTimestamp",
                 "deletionTimestamp", "deletionGracePeriodSeconds")
SESSION_KEY_BYTES = 32
GCM_NONCE = b"\0" * 12
# The characters Kubernetes draws generateName suffixes from (k8s.io/apimachinery rand).
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# DER of the KeyUsage extension value Go writes for x509.KeyUsageEncipherOnly alone:
# BIT STRING, 0 unused bits, one byte 0x01 (bit 7). The `cryptography` KeyUsage class
# refuses encipher_only without key_agreement, so the bytes go in as they are.
KEY_USAGE_ENCIPHER_ONLY_DER = b"\x03\x02\x00\x01"
# The largest input read (a Kubernetes object is at most about 1.5 MiB in etcd).
INPUT_MAX = 8 << 20


class Refused(Exception):
    """An input that cannot be used; the message names it, never a value."""


# ---- the format --------------------------------------------------------------------------

def oaep(label):
    # Go's rsa.EncryptOAEP(sha256.New(), ...) uses one hash for OAEP and MGF1.
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=label if label else None)


def encryption_label(scope, namespace, name):
    if scope == "cluster-wide":
        return b""
    if scope == "namespace-wide":
        return namespace.encode()
    return ("%s/%s" % (namespace, name)).encode()


def scope_of(metadata):
    annotations = (metadata or {}).get("annotations") or {}
    if annotations.get(CLUSTER_WIDE) == "true":
        return "cluster-wide"
    if annotations.get(NAMESPACE_WIDE) == "true":
        return "namespace-wide"
    return "strict"


def hybrid_encrypt(public_key, label, plaintext):
    session_key = os.urandom(SESSION_KEY_BYTES)
    rsa_ct = public_key.encrypt(session_key, oaep(label))
    sealed = AESGCM(session_key).encrypt(GCM_NONCE, plaintext, None)
    return struct.pack(">H", len(rsa_ct)) + rsa_ct + sealed


def hybrid_decrypt(private_keys, label, blob):
    """The plaintext, or Refused saying why. Like the controller: every key is tried for the
    session key; the first key whose OAEP opens decides, and a GCM failure then is final."""
    if len(blob) < 2:
        raise Refused("ciphertext too short for its length prefix")
    (rsa_len,) = struct.unpack(">H", blob[:2])
    if len(blob) < 2 + rsa_len:
        raise Refused("ciphertext shorter than its length prefix (%d)" % rsa_len)
    rsa_ct, sealed = blob[2:2 + rsa_len], blob[2 + rsa_len:]
    for key in private_keys:
        try:
            session_key = key.decrypt(rsa_ct, oaep(label))
        except ValueError:
            continue
        if len(session_key) != SESSION_KEY_BYTES:
            raise Refused("the session key is %d bytes, not %d" % (len(session_key), SESSION_KEY_BYTES))
        try:
            return AESGCM(session_key).decrypt(GCM_NONCE, sealed, None)
        except InvalidTag:
            raise Refused("AES-GCM authentication failed (the value was altered)") from None
    raise Refused("no key opens the session key with this label (wrong key, scope, namespace or name)")


# ---- reading -------------------------------------------------------------------------

def read_text(path):
    try:
        if path in (None, "-"):
            data = sys.stdin.buffer.read(INPUT_MAX + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(INPUT_MAX + 1)
    except OSError as e:
        raise Refused("%s: %s" % (path, e.strerror)) from None
    if len(data) > INPUT_MAX:
        raise Refused("%s: larger than %d bytes" % (shown(path), INPUT_MAX))
    return data


def shown(path):
    return "stdin" if path in (None, "-") else path


def parse_documents(data, path):
    """Every document in data: JSON, else YAML (when python3-yaml is there)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("%s: not UTF-8" % shown(path)) from None
    try:
        return [json.loads(text)]
    except ValueError as e:
        json_error = e
    try:
        import yaml
    except ImportError:
        raise Refused("%s: not JSON (%s), and python3-yaml is not installed for YAML"
                      % (shown(path), json_error)) from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise Refused("%s: neither JSON nor YAML (%s)" % (shown(path), str(e).split("\n")[0])) from None


def parse_one(data, path, kind):
    docs = parse_documents(data, path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise Refused("%s: expected one %s object" % (shown(path), kind))
    if docs[0].get("kind") != kind:
        raise Refused("%s: kind is %r, not %s" % (shown(path), docs[0].get("kind"), kind))
    return docs[0]


def b64decode_go(text, what):
    """Go's base64.StdEncoding: the standard alphabet with padding; CR and LF anywhere are
    skipped (as in base64(1) output pasted into a YAML block); trailing bits need not be 0.
    The controller decodes encryptedData so, and the API server and kubeseal a Secret's data."""
    if not isinstance(text, str):
        raise Refused("%s is not a string" % what)
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", "").encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Refused("%s is not standard padded base64" % what) from None


def b64encode(raw):
    return base64.b64encode(raw).decode("ascii")


def load_certificate(path):
    from cryptography import x509
    data = read_text(path)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise Refused("%s: not a PEM certificate" % path) from None
    # kubeseal refuses an expired certificate and checks nothing else.
    if cert.not_valid_after < datetime.datetime.utcnow():
        raise Refused("%s: the certificate expired on %s" % (path, cert.not_valid_after.isoformat()))
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("%s: the certificate does not hold an RSA key" % path)
    return key


def private_keys_from_pem(data, path):
    keys, marker = [], b"-----BEGIN "
    for chunk in data.split(marker)[1:]:
        block = marker + chunk
        if b"PRIVATE KEY-----" not in block.split(b"\n", 1)[0]:
            continue
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError):
            raise Refused("%s: a private key block does not parse" % path) from None
        if isinstance(key, rsa.RSAPrivateKey):
            keys.append(key)
    return keys


def private_keys_from_manifest(doc, path):
    if not isinstance(doc, dict):
        return []
    if str(doc.get("kind") or "").endswith("List"):
        keys = []
        for item in doc.get("items") or []:
            keys.extend(private_keys_from_manifest(item, path))
        return keys
    if doc.get("kind") != "Secret":
        return []
    pem = (doc.get("data") or {}).get("tls.key")
    if pem is None:
        return []
    name = ((doc.get("metadata") or {}).get("name")) or "?"
    return private_keys_from_pem(b64decode_go(pem, "%s: %s data.tls.key" % (path, name)), path)


def load_private_keys(path):
    data = read_text(path)
    if b"-----BEGIN " in data and b"PRIVATE KEY-----" in data:
        keys = private_keys_from_pem(data, path)
    else:
        keys = []
        for doc in parse_documents(data, path):
            keys.extend(private_keys_from_manifest(doc, path))
    if not keys:
        raise Refused("%s: holds no RSA private key (PEM, or a key Secret with data.tls.key)" % path)
    return keys


# ---- commands ------------------------------------------------------------------------

def make_certificate(private_key, cn, days):
    """A certificate as pkg/crypto/keys.go generateCert makes it: random 128-bit serial,
    subject = issuer = CN (none when empty), KeyUsage encipherOnly (critical), CA."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    serial = 0
    while serial == 0:  # `cryptography` wants a positive serial; Go's rand.Int may draw 0
        serial = secrets.randbits(128)
    now = datetime.datetime.utcnow().replace(microsecond=0)
    public_key = private_key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(name)
               .public_key(public_key)
               .serial_number(serial)
               .not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE,
                                                         KEY_USAGE_ENCIPHER_ONLY_DER), critical=True)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               # Go adds a SubjectKeyId (SHA-1 of the key) to CA certificates itself.
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    return builder.sign(private_key, hashes.SHA256())


def write_new(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def key_secret(key_pem, cert_pem, namespace):
    """The controller's key Secret (pkg/controller/keys.go writeKey) with the name the API
    server would give generateName "sealed-secrets-key"."""
    suffix = "".join(secrets.choice(GENERATE_NAME_ALPHABET) for _ in range(5))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "sealed-secrets-key" + suffix,
            "namespace": namespace,
            "labels": {KEY_LABEL: "active"},
        },
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64encode(cert_pem), "tls.key": b64encode(key_pem)},
    }


def cmd_keygen(args):
    if args.out_dir is None and args.paths is None:
        raise UsageError("keygen: give --out-dir DIR (or the older KEY CERT)")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    key_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
    cert_pem = make_certificate(private_key, args.cn, args.days).public_bytes(serialization.Encoding.PEM)
    try:
        if args.paths is not None:
            write_new(args.paths[0], key_pem, 0o600)
            write_new(args.paths[1], cert_pem, 0o644)
            return 0
        os.makedirs(args.out_dir, mode=0o700, exist_ok=True)
        write_new(os.path.join(args.out_dir, "tls.key"), key_pem, 0o600)
        write_new(os.path.join(args.out_dir, "tls.crt"), cert_pem, 0o644)
        manifest = json.dumps(key_secret(key_pem, cert_pem, args.namespace), indent=2) + "\n"
        write_new(os.path.join(args.out_dir, "key-secret.json"), manifest.encode(), 0o600)
    except OSError as e:
        raise Refused("keygen: %s: %s" % (e.filename, e.strerror)) from None
    return 0


def secret_values(secret):
    """data (base64) then stringData (plain, wins), as kubeseal merges them."""
    values = {}
    for key, value in (secret.get("data") or {}).items():
        values[key] = b64decode_go(value, "data.%s" % key)
    for key, value in (secret.get("stringData") or {}).items():
        if not isinstance(value, str):
            raise Refused("stringData.%s is not a string" % key)
        values[key] = value.encode("utf-8")
    return values


def set_scope_annotations(metadata, scope):
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(CLUSTER_WIDE, None)
    annotations.pop(NAMESPACE_WIDE, None)
    if scope == "cluster-wide":
        annotations[CLUSTER_WIDE] = "true"
    elif scope == "namespace-wide":
        annotations[NAMESPACE_WIDE] = "true"
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def cmd_seal(args):
    public_key = load_certificate(args.cert)
    secret = parse_one(read_text("-"), "-", "Secret")
    metadata = copy.deepcopy(secret.get("metadata") or {})
    # kubeseal: --name and --namespace override the Secret's.
    if args.name:
        metadata["name"] = args.name
    if args.namespace:
        metadata["namespace"] = args.namespace
    name, namespace = metadata.get("name") or "", metadata.get("namespace") or ""
    if not name:
        raise Refused("the Secret has no metadata.name (or give --name)")
    # kubeseal rewrites the input's scope annotations for a --scope other than strict, the
    # default; with strict or none the Secret's own annotations decide.
    if args.scope not in (None, "strict"):
        set_scope_annotations(metadata, args.scope)
    scope = scope_of(metadata)
    if not namespace and scope != "cluster-wide":
        # kubeseal would take the kubeconfig's namespace; there is none here.
        raise Refused("the Secret has no metadata.namespace (or give --namespace)")
    label = encryption_label(scope, namespace, name)

    template_metadata = metadata
    for field in SERVER_FIELDS + ("ownerReferences",):
        template_metadata.pop(field, None)
    annotations = {k: v for k, v in (template_metadata.get("annotations") or {}).items()
                   if k not in LAST_APPLIED}
    if annotations:
        template_metadata["annotations"] = annotations
    else:
        template_metadata.pop("annotations", None)
    if not template_metadata.get("labels"):
        template_metadata.pop("labels", None)
    template = {"metadata": template_metadata}
    if secret.get("type"):
        template["type"] = secret["type"]
    if "immutable" in secret:
        template["immutable"] = secret["immutable"]

    encrypted = {key: b64encode(hybrid_encrypt(public_key, label, value))
                 for key, value in sorted(secret_values(secret).items())}
    sealed_metadata = {"name": name}
    if namespace:
        sealed_metadata["namespace"] = namespace
    set_scope_annotations(sealed_metadata, scope)
    sealed = {"apiVersion": args.api, "kind": "SealedSecret", "metadata": sealed_metadata,
              "spec": {"encryptedData": encrypted, "template": template}}
    if args.format == "yaml":
        try:
            import yaml
        except ImportError:
            raise Refused("--format yaml needs python3-yaml") from None
        sys.stdout.write(yaml.safe_dump(sealed, default_flow_style=False))
    else:
        sys.stdout.write(json.dumps(sealed, indent=2) + "\n")
    return 0


def cmd_unseal(args):
    private_keys = []
    for path in args.key:
        private_keys.extend(load_private_keys(path))
    sealed = parse_one(read_text("-"), "-", "SealedSecret")
    if sealed.get("apiVersion") not in (API_BITNAMI, API_LATCHKEY):
        raise Refused("apiVersion %r is not %s or %s" % (sealed.get("apiVersion"), API_BITNAMI, API_LATCHKEY))
    metadata = sealed.get("metadata") or {}
    spec = sealed.get("spec") or {}
    if "data" in spec:
        raise Refused("spec.data is the deprecated v1 format, which the controller refuses by default")
    encrypted = spec.get("encryptedData")
    if not isinstance(encrypted, dict) or not encrypted:
        raise Refused("spec.encryptedData is missing or empty")
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    scope = scope_of(metadata)
    if not name or (scope != "cluster-wide" and not namespace):
        raise Refused("metadata.name and (unless cluster-wide) metadata.namespace are needed")
    label = encryption_label(scope, namespace, name)
    data = {}
    for key, value in sorted(encrypted.items()):
        blob = b64decode_go(value, "spec.encryptedData.%s" % key)
        try:
            data[key] = b64encode(hybrid_decrypt(private_keys, label, blob))
        except Refused as e:
            raise Refused("%s/%s: value %r does not open (%s scope, label %r, %d key(s) tried): %s"
                          % (namespace, name, key, scope, label.decode(), len(private_keys), e)) from None
    template = spec.get("template") or {}
    if template.get("data"):
        sys.stderr.write("%s: spec.template.data is not rendered here; the output holds the sealed keys only\n" % PROG)
    out_metadata = copy.deepcopy(template.get("metadata") or {})
    # The controller sets these from the SealedSecret, whatever the template says.
    out_metadata["name"] = name
    if namespace:
        out_metadata["namespace"] = namespace
    else:
        out_metadata.pop("namespace", None)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": out_metadata,
              "type": template.get("type") or "Opaque", "data": data}
    if "immutable" in template:
        secret["immutable"] = template["immutable"]
    sys.stdout.write(json.dumps(secret, indent=2, sort_keys=True) + "\n")
    return 0


# ---- the command line ----------------------------------------------------------------

class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def main(argv):
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    k = sub.add_parser("keygen", help="an RSA key, its certificate and the key Secret")
    k.add_argument("paths", nargs="*", metavar="KEY CERT", help="the older form: write these two files")
    k.add_argument("--out-dir")
    k.add_argument("--bits", type=int, default=4096)
    k.add_argument("--namespace", default="kube-system")
    k.add_argument("--cn", default="")
    k.add_argument("--days", type=int, default=3650)
    s = sub.add_parser("seal", help="Secret (stdin) -> SealedSecret (stdout)")
    s.add_argument("--cert", required=True)
    s.add_argument("--scope", choices=["strict", "namespace-wide", "cluster-wide"])
    s.add_argument("--namespace")
    s.add_argument("--name")
    s.add_argument("--api", default=API_BITNAMI, choices=[API_BITNAMI, API_LATCHKEY])
    s.add_argument("--format", default="json", choices=["json", "yaml"])
    u = sub.add_parser("unseal", help="SealedSecret (stdin) -> Secret (stdout)")
    u.add_argument("--key", action="append", required=True)
    try:
        args = p.parse_args(argv)
        if args.cmd == "keygen":
            if args.paths and (len(args.paths) != 2 or args.out_dir is not None):
                raise UsageError("keygen: KEY CERT (two paths) or --out-dir DIR")
            args.paths = args.paths or None
            if args.bits < 1024 or args.bits > 16384:
                raise UsageError("keygen: --bits must be 1024..16384")
        return {"keygen": cmd_keygen, "seal": cmd_seal, "unseal": cmd_unseal}[args.cmd](args)
    except UsageError as e:
        p.print_usage(sys.stderr)
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 2
    except Refused as e:
        sys.stderr.write("%s %s: %s\n" % (PROG, args.cmd, e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
