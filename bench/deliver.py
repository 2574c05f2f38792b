#!/usr/bin/env python3
"""Drives bench/instructions.sh's delivery scenarios: PATCHes of one task
per user, round robin over the users, on one kept-alive connection. With
STREAMS > 0 each user first gets that many event streams, and every write
waits until its event has reached all of them, so the server's work for a
write (the feed read, the events, the socket writes) falls inside the
count; without streams each write is followed by a short pause instead, so
that the two counts cover the same timers.

Arguments: port, tokens file ("token task_id" lines), streams per user,
measured writes, warm-up writes, the server's pid and the dump's label.
The counters are dumped (and so zeroed) after the warm-up and again after
the measured writes. Standard library only.
"""
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

PAUSE_WITHOUT_STREAMS = 0.005
EVENT_TIMEOUT = 30


def main():
    port, tokens_file = int(sys.argv[1]), sys.argv[2]
    streams, count, warmup = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    pid, label = sys.argv[6], sys.argv[7]
    users = [line.split()[:2] for line in open(tokens_file)]
    arrived = {}  # title -> how many streams have its event
    news = threading.Condition()

    def follow(token):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(
            f"GET /api/tasks/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        pending = b""
        while chunk := connection.recv(65536):
            pending += chunk
            while b"\n\n" in pending:
                event, pending = pending.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        title = json.loads(line[5:]).get("task", {}).get("title")
                        with news:
                            arrived[title] = arrived.get(title, 0) + 1
                            news.notify_all()

    for token, _ in users:
        for _ in range(streams):
            threading.Thread(target=follow, args=(token,), daemon=True).start()
    time.sleep(2 if streams else 0)

    writer = http.client.HTTPConnection("127.0.0.1", port)

    def write(n):
        for i in range(n):
            token, task = users[i % len(users)]
            title = f"delivered {uuid.uuid4().hex}"
            writer.request(
                "PATCH", f"/api/tasks/{task}", body=json.dumps({"title": title}),
                headers={"Authorization": f"Bearer {token}",
                         "Content-Type": "application/merge-patch+json"},
            )
            response = writer.getresponse()
            response.read()
            if response.status != 200:
                sys.exit(f"PATCH answered {response.status}")
            if not streams:
                time.sleep(PAUSE_WITHOUT_STREAMS)
                continue
            with news:
                if not news.wait_for(lambda: arrived.get(title, 0) >= streams, EVENT_TIMEOUT):
                    sys.exit(f"the event of {title} reached {arrived.get(title, 0)} of {streams} streams")

    write(warmup)
    subprocess.run(["callgrind_control", "-d", "warmup", pid], capture_output=True, check=False)
    write(count)
    subprocess.run(["callgrind_control", "-d", label, pid], capture_output=True, check=False)


if __name__ == "__main__":
    main()
