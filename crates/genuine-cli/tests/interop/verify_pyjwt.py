"""Verifies Genuine tokens with PyJWT, a widely used JWT library, against the
service's published JWKS (or an HS256 secret). Reads a JSON file of cases and
prints one JSON list of results: the proof that Genuine tokens are plain JWTs.
"""
import base64
import json
import sys

import jwt


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main(path):
    with open(path) as f:
        data = json.load(f)
    keys = {k["kid"]: jwt.PyJWK.from_dict(k) for k in data["jwks"]["keys"]}
    results = []
    for case in data["cases"]:
        token = case["token"]
        header = jwt.get_unverified_header(token)
        try:
            if case["key"] == "jwks":
                key = keys[header["kid"]].key
            else:
                key = b64url(case["key"].split(":", 1)[1])
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=case["audience"],
                issuer=case["issuer"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            results.append({"ok": True, "sub": claims["sub"], "alg": header["alg"]})
        except KeyError as e:
            results.append({"ok": False, "error": "UnknownKid", "detail": str(e)})
        except jwt.InvalidTokenError as e:
            results.append({"ok": False, "error": type(e).__name__, "detail": str(e)})
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
