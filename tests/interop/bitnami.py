#!/usr/bin/python3
"""An independent implementation of the Bitnami sealed-secrets value format, written
from the published description (sealed-secrets pkg/crypto/crypto.go, docs/developer/
crypto.md) with the `cryptography` package, to check latchkey against something that
does not share its code.

    blob  = BE16(len(rsa_ct)) || rsa_ct || AES-256-GCM(K, nonce=0^12, aad=none) || tag
    rsa_ct = RSA-OAEP(SHA-256, MGF1-SHA-256, label)(K), K = 32 random bytes
    label = "ns/name" (strict) | "ns" (namespace-wide) | "" (cluster-wide)
    value = base64 (standard alphabet, padded)

Commands (manifests are JSON on stdin/stdout):
    keygen KEY CERT [--bits N]      PKCS#1 private key and a self-signed certificate
    seal --cert CERT [--scope S]    Secret -> SealedSecret (bitnami.com/v1alpha1)
    unseal --key KEY                SealedSecret -> Secret (scope from its annotations)

Run it with the Debian interpreter: /usr/bin/python3 (python3-cryptography).
"""
import argparse
import base64
import datetime
import json
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

NS_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"


def oaep(label):
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=label or None)


def label_for(scope, ns, name):
    if scope == "cluster-wide":
        return b""
    if scope == "namespace-wide":
        return ns.encode()
    return ("%s/%s" % (ns, name)).encode()


def scope_of(meta):
    ann = (meta or {}).get("annotations") or {}
    if ann.get(CLUSTER_WIDE) == "true":
        return "cluster-wide"
    if ann.get(NS_WIDE) == "true":
        return "namespace-wide"
    return "strict"


def hybrid_encrypt(pub, label, plaintext):
    key = os.urandom(32)
    rsa_ct = pub.encrypt(key, oaep(label))
    gcm = AESGCM(key).encrypt(b"\0" * 12, plaintext, None)
    return struct.pack(">H", len(rsa_ct)) + rsa_ct + gcm


def hybrid_decrypt(priv, label, blob):
    (n,) = struct.unpack(">H", blob[:2])
    rsa_ct, rest = blob[2:2 + n], blob[2 + n:]
    key = priv.decrypt(rsa_ct, oaep(label))
    return AESGCM(key).decrypt(b"\0" * 12, rest, None)


def cmd_keygen(args):
    priv = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interop")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(priv.public_key())
            .serial_number(int.from_bytes(os.urandom(16), "big"))
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(priv, hashes.SHA256()))
    with open(args.key, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(priv.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption()))
    with open(args.cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def cmd_seal(args):
    with open(args.cert, "rb") as f:
        pub = x509.load_pem_x509_certificate(f.read()).public_key()
    secret = json.load(sys.stdin)
    meta = secret.get("metadata") or {}
    scope = args.scope or scope_of(meta)
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    label = label_for(scope, ns, name)
    values = {k: base64.b64decode(v, validate=True) for k, v in (secret.get("data") or {}).items()}
    values.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    enc = {k: base64.b64encode(hybrid_encrypt(pub, label, v)).decode() for k, v in values.items()}
    out_meta = {"name": name, "namespace": ns}
    if scope == "cluster-wide":
        out_meta["annotations"] = {CLUSTER_WIDE: "true"}
    elif scope == "namespace-wide":
        out_meta["annotations"] = {NS_WIDE: "true"}
    sealed = {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": out_meta,
              "spec": {"encryptedData": enc,
                       "template": {"metadata": {"name": name, "namespace": ns},
                                    "type": secret.get("type", "Opaque")}}}
    json.dump(sealed, sys.stdout, indent=2)
    sys.stdout.write("\n")


def cmd_unseal(args):
    with open(args.key, "rb") as f:
        priv = serialization.load_pem_private_key(f.read(), password=None)
    sealed = json.load(sys.stdin)
    meta = sealed.get("metadata") or {}
    label = label_for(scope_of(meta), meta.get("namespace", ""), meta.get("name", ""))
    data = {}
    for k, v in sealed["spec"]["encryptedData"].items():
        try:
            data[k] = base64.b64encode(hybrid_decrypt(priv, label, base64.b64decode(v, validate=True))).decode()
        except Exception as e:  # the key name only, never a value
            sys.stderr.write("bitnami.py: %s does not open: %s\n" % (k, type(e).__name__))
            sys.exit(1)
    tmpl = (sealed["spec"].get("template") or {})
    out = {"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")},
           "type": tmpl.get("type", "Opaque"), "data": data}
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("key")
    k.add_argument("cert")
    k.add_argument("--bits", type=int, default=2048)
    s = sub.add_parser("seal")
    s.add_argument("--cert", required=True)
    s.add_argument("--scope", choices=["strict", "namespace-wide", "cluster-wide"])
    u = sub.add_parser("unseal")
    u.add_argument("--key", required=True)
    args = p.parse_args()
    {"keygen": cmd_keygen, "seal": cmd_seal, "unseal": cmd_unseal}[args.cmd](args)


if __name__ == "__main__":
    main()
