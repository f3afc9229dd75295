"""Ports picked for a server with several listeners must all differ.

Triton exits at start when its gRPC, HTTP and metrics ports collide, and a
CI run failed that way after ``free_port()`` was called three times and
handed out one port twice (measured here: 7 triples in 20,000).
"""

from __future__ import annotations

import socket

from bertctr.harness.procs import free_ports


def test_free_ports_are_distinct_and_bindable() -> None:
    for _ in range(200):
        ports = free_ports(3)
        assert len(set(ports)) == 3
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports[:8]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # still free once the picker let go
