#!/usr/bin/env python3
"""Mints a signed token (JWT) for ngx-wcs-token-auth with PyJWT: pip install 'PyJWT[crypto]'.

The key is a private JWK Set (as `wcs-token jwks new --private` writes it; the key is chosen by
--kid, or is the only one), a single private JWK, or a PEM private key (then --alg is needed).
Every option can also come from the environment: --sub from JWT_SUB, --key from JWT_KEY, etc.

    mint_token.py --key private.jwks --kid k1 --sub alice --ttl 3600 --aud wcs --iss backend
"""
import argparse
import json
import os
import sys
import time
import uuid

import jwt

ALG_OF_KTY = {"EC": "ES256", "OKP": "EdDSA", "RSA": "RS256"}


def option(parser, name, **kw):
    env = "JWT_" + name.upper().replace("-", "_")
    parser.add_argument("--" + name, default=os.environ.get(env), **kw)


def main():
    p = argparse.ArgumentParser(description="Mint a signed token for ngx-wcs-token-auth.")
    option(p, "key", help="private JWK Set, JWK or PEM file")
    option(p, "kid", help="key id (chooses the key in a set; put in the header)")
    option(p, "alg", help="HS256, ES256, EdDSA or RS256 (default: the key's)")
    option(p, "sub", help="subject")
    option(p, "ttl", type=int, help="seconds until exp (default 3600)")
    option(p, "exp", type=int, help="exp, seconds since the epoch (instead of --ttl)")
    option(p, "iat", type=int, help="iat (default: now)")
    option(p, "nbf", type=int, help="nbf (default: none)")
    option(p, "jti", help="token id (default: a random UUID; 'none' for no jti)")
    option(p, "iss", help="issuer")
    p.add_argument("--aud", action="append", default=None,
                   help="audience; given twice or more, an array (env: JWT_AUD)")
    a = p.parse_args()
    if a.key is None or a.sub is None:
        p.error("--key and --sub are required")
    aud = a.aud or ([os.environ["JWT_AUD"]] if os.environ.get("JWT_AUD") else None)

    with open(a.key, "rb") as f:
        text = f.read()
    kid, alg = a.kid, a.alg
    if text.lstrip().startswith(b"-----BEGIN"):
        if alg is None:
            p.error("--alg is required with a PEM key")
        key = text
    else:
        doc = json.loads(text)
        jwks = doc.get("keys", [doc])
        found = [k for k in jwks if kid is None or k.get("kid") == kid]
        if len(found) != 1:
            p.error("no single key with kid %r in %s" % (kid, a.key))
        jwk = found[0]
        kid = kid or jwk.get("kid")
        alg = alg or jwk.get("alg") or ALG_OF_KTY.get(jwk.get("kty"))
        key = jwt.PyJWK(jwk, algorithm=alg).key

    now = int(time.time())
    iat = a.iat if a.iat is not None else now
    claims = {"sub": a.sub, "iat": iat,
              "exp": a.exp if a.exp is not None else iat + (a.ttl or 3600)}
    if a.nbf is not None:
        claims["nbf"] = a.nbf
    if a.jti != "none":
        claims["jti"] = a.jti or str(uuid.uuid4())
    if a.iss:
        claims["iss"] = a.iss
    if aud:
        claims["aud"] = aud[0] if len(aud) == 1 else aud
    headers = {"kid": kid} if kid else None
    print(jwt.encode(claims, key, algorithm=alg, headers=headers))


if __name__ == "__main__":
    sys.exit(main())
