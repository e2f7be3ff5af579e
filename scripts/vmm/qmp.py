#!/usr/bin/env python3
"""scripts/vmm/qmp.py: a minimal QMP client for the VMM lab (scripts/vmm-test).

  qmp.py SOCKET STEP...

Connects to QEMU's QMP socket, negotiates, and runs each STEP in order:
  NAME                  a command without arguments (stop, cont, quit)
  NAME=JSON             a command with arguments
  wait-migration        polls query-migrate until "completed" (fails on
                        "failed" or "cancelled", or after 60 s)
Prints one line per step (the reply's return, compact) and exits 1 on the
first error. Asynchronous events are skipped.
"""
import json
import socket
import sys
import time


def main():
    path, steps = sys.argv[1], sys.argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(100):
        try:
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"qmp: cannot connect to {path}")
    stream = sock.makefile("rwb", buffering=0)

    def receive():
        while True:
            line = stream.readline()
            if not line:
                sys.exit("qmp: QEMU closed the connection")
            message = json.loads(line)
            if "event" not in message:
                return message

    def execute(name, arguments=None):
        request = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        stream.write(json.dumps(request).encode() + b"\n")
        reply = receive()
        if "error" in reply:
            sys.exit(f"qmp: {name}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    receive()  # the greeting
    execute("qmp_capabilities")
    for step in steps:
        if step == "wait-migration":
            deadline = time.monotonic() + 60
            while True:
                status = execute("query-migrate").get("status", "none")
                if status == "completed":
                    break
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    sys.exit(f"qmp: migration {status}")
                time.sleep(0.05)
            print("wait-migration: completed")
            continue
        name, _, text = step.partition("=")
        result = execute(name, json.loads(text) if text else None)
        print(f"{name}: {json.dumps(result, separators=(',', ':'))}")
        if name == "quit":
            break


if __name__ == "__main__":
    main()
