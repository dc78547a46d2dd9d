"""A function instance that misbehaves on purpose, for tests/e2e/function_faults_test.py. Listens on $PORT like
any instance and, per request, does what argv[1] says:
  garbage   answers bytes that are not HTTP, then closes
  silent    reads the request and never answers
  halfway   sends headers promising 1000 bytes, sends 10, closes
  flood     writes 200,000 lines and one 1 MiB line to stdout, then answers 204
  forkbomb  forks without end (each child in its own session, asleep), never answers
  sigterm   ignores SIGTERM; answers 204
"""
import os
import signal
import socket
import sys
import time

MODE = sys.argv[1]


def answer(conn):
    conn.recv(65536)
    if MODE == "garbage":
        conn.sendall(b"\x00\xffthis is not HTTP at all\r\n\r\n")
    elif MODE == "silent":
        time.sleep(3600)
    elif MODE == "halfway":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
    elif MODE == "flood":
        line = b"flood " + b"x" * 100 + b"\n"
        out = sys.stdout.buffer
        for _ in range(200000):
            out.write(line)
        out.write(b"y" * (1 << 20) + b"\n")
        out.flush()
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    elif MODE == "forkbomb":
        # Forks for as long as it lives; each child leaves the process group and sleeps. (A safety net of 20,000
        # forks, should a machine without a pids cgroup ever run it: the test skips it there.)
        for _ in range(20000):
            try:
                if os.fork() == 0:
                    os.setsid()
                    time.sleep(600)
                    os._exit(0)
            except OSError:
                time.sleep(0.001)
        time.sleep(3600)
    elif MODE == "sigterm":
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    conn.close()


def main():
    if MODE == "sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(os.environ["PORT"])))
    server.listen(16)
    print("pid", os.getpid(), flush=True)
    while True:
        conn, _ = server.accept()
        answer(conn)


main()
