#!/usr/bin/env python3
"""Finds, for each user of the `page` scenario, the address of page 1 and
of page N of one list query, by walking the `Link: rel="next"` chain
through the API as a front end would.

Reads "token" lines on stdin. Arguments: base URL, the first page's path
and query, N, and the two output files; each gets "token path" lines.
"""
import re
import sys
import urllib.request

NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def fetch(base, path, token):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        link = response.headers.get("Link", "")
    found = NEXT.search(link)
    return found.group(1) if found else None


def main():
    base, first, page, first_out, last_out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    with open(first_out, "w") as firsts, open(last_out, "w") as lasts:
        for line in sys.stdin:
            token = line.split()[0]
            path = first
            for number in range(1, page):
                path = fetch(base, path, token)
                if path is None:
                    sys.exit(f"the list ends before page {page} (at page {number})")
                # The link may be absolute; the load generator wants the path.
                path = re.sub(r"^https?://[^/]+", "", path)
            fetch(base, path, token)  # page N itself must answer
            firsts.write(f"{token} {first}\n")
            lasts.write(f"{token} {path}\n")


if __name__ == "__main__":
    main()
