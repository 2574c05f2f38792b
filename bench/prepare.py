#!/usr/bin/env python3
"""Prepares benchmark data through the API itself: N users sign up, each
creates M tasks; writes one line per user: "<token> <task id> <task id> ...".

Standard library only, so the benchmark needs nothing installed from PyPI.
"""
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def prepare_user(base, index, tasks_per_user):
    email = f"bench-{index}@bench.example"
    auth = call(base, "POST", "/api/auth/signup", {"email": email, "password": "bench password"})
    token = auth["access_token"]
    ids = [
        call(base, "POST", "/api/tasks", {"title": f"task {n} of user {index}"}, token)["id"]
        for n in range(tasks_per_user)
    ]
    return token, ids


def main():
    base, users, tasks_per_user, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with ThreadPoolExecutor(max_workers=8) as pool:
        prepared = list(pool.map(lambda i: prepare_user(base, i, tasks_per_user), range(users)))
    with open(out, "w") as handle:
        for token, ids in prepared:
            handle.write(" ".join([token, *ids]) + "\n")


if __name__ == "__main__":
    main()
