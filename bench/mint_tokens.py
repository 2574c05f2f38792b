#!/usr/bin/env python3
"""Mints HS256 tokens exactly as todo-api issues them, for users that were
seeded with SQL (and so never signed in). Reads "user_id email task_id ..."
lines on stdin; writes "token task_id ..." lines on stdout.

Arguments: JWT secret, issuer, lifetime in seconds.
"""
import base64
import hashlib
import hmac
import json
import sys
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret, issuer, lifetime, user_id, email):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "HS256"}
    claims = {"sub": user_id, "email": email, "iat": now, "exp": now + lifetime, "iss": issuer}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def main():
    secret, issuer, lifetime = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for line in sys.stdin:
        user_id, email, *task_ids = line.split()
        print(" ".join([mint(secret, issuer, lifetime, user_id, email), *task_ids]))


if __name__ == "__main__":
    main()
