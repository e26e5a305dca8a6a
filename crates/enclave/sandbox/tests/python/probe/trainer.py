"""A hostile Python trainer for the sandbox's tests: it tries every system channel CPython has —
files, directories, environment, arguments, stdin, clocks, timers, randomness, sockets, exit —
and saves what it observed, one tensor per observation under its name (`random`: 16 bytes of
`os.urandom`), for the test to check that nothing useful came back. Hyper-parameter `exit` = 1
calls `sys.exit` instead.
"""

import os
import socket  # imported at build time, so it is in the component's snapshot
import sys
import time

import chiron

RANDOM_BYTES = 16


def _raises(action) -> float:
    """1.0 if `action` succeeded, 0.0 if it raised."""
    try:
        action()
    except Exception:
        return 0.0
    return 1.0


def _socket() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 9))


def _resolve() -> None:
    socket.getaddrinfo("localhost", 80)


def _console() -> None:
    # Much more than the console shows in test mode; nothing at all is kept in the service.
    for _ in range(64):
        print("x" * 16384)
    print("to stderr", file=sys.stderr, flush=True)


def train(config: chiron.TrainConfig) -> None:
    if config.hyper("exit", 0.0) != 0.0:
        sys.exit(3)
    seen = {}
    seen["environment_variables"] = float(len(os.environ))
    seen["arguments"] = float(len(sys.argv))
    try:
        seen["stdin_bytes"] = float(len(sys.stdin.read()))
    except Exception:
        seen["stdin_bytes"] = 0.0
    seen["wall_clock"] = time.time()
    m0 = time.monotonic()
    p0 = time.perf_counter()
    total = 0
    for i in range(200_000):  # real work between two readings
        total += i
    seen["monotonic_advance"] = time.monotonic() - m0
    seen["perf_counter_advance"] = time.perf_counter() - p0
    s0 = time.monotonic()
    time.sleep(30)  # must return at once: timers are due immediately
    seen["sleep_seconds_by_clock"] = time.monotonic() - s0
    seen["opened_a_file"] = _raises(lambda: open("/etc/passwd", "rb").read())
    seen["listed_a_directory"] = _raises(lambda: os.listdir("/"))
    seen["made_a_directory"] = _raises(lambda: os.mkdir("/tmp/chiron-probe"))
    # wasi-libc's default: "/" of a file system with nothing in it.
    seen["cwd_other_than_root"] = float(os.getcwd() != "/")
    seen["opened_a_socket"] = _raises(_socket)
    seen["resolved_a_name"] = _raises(_resolve)
    seen["console_write_failed"] = 1.0 - _raises(_console)
    saved = {name: chiron.tensor([float(value)]) for name, value in seen.items()}
    saved["random"] = chiron.tensor([float(b) for b in os.urandom(RANDOM_BYTES)])
    chiron.model.save(saved)


def predict(x: chiron.Tensor) -> chiron.Tensor:
    return x
