"""Mints JWTs with PyJWT for genuine-verify to check: ES256 and EdDSA with keys
generated here (their public JWKs are printed), HS256 with a secret given on
the command line (the service's exported secret). Prints one JSON object.
"""
import base64
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main(issuer, audience, hs_kid, hs_secret_b64):
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": "com.example.shop", "iat": now,
              "exp": now + 300, "jti": "pyjwt-minted-0001", "did": "pyjwt-device", "arc": "AAAAAAAAAAAAAAAA"}
    out = {"jwks": {"keys": []}, "tokens": []}

    ec_key = ec.generate_private_key(ec.SECP256R1())
    nums = ec_key.public_key().public_numbers()
    out["jwks"]["keys"].append({"kty": "EC", "crv": "P-256", "kid": "py-es", "alg": "ES256", "use": "sig",
                                "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))})
    out["tokens"].append({"alg": "ES256", "token": jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "py-es"})})

    ed_key = ed25519.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization
    raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out["jwks"]["keys"].append({"kty": "OKP", "crv": "Ed25519", "kid": "py-ed", "alg": "EdDSA", "use": "sig", "x": b64url(raw)})
    out["tokens"].append({"alg": "EdDSA", "token": jwt.encode(claims, ed_key, algorithm="EdDSA", headers={"kid": "py-ed"})})

    secret = base64.urlsafe_b64decode(hs_secret_b64 + "=" * (-len(hs_secret_b64) % 4))
    out["tokens"].append({"alg": "HS256", "token": jwt.encode(claims, secret, algorithm="HS256", headers={"kid": hs_kid})})
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:5])
