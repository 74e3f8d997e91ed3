"""A network namespace joined to this one by a veth pair: a build node on "another machine", and a cable to cut.

Root can make them (``ip netns``, ``ip link``); the names carry this process's pid, and
everything made is removed afterwards, also after a failed test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Namespace:
    name: str
    host_if: str  # this side of the veth pair: set it down to cut the namespace off
    host_ip: str  # where the namespace reaches this side (serve on it)
    inside_ip: str

    def prefix(self) -> list[str]:
        """What runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def namespace(index: int = 1) -> Iterator[Namespace]:
    """``gl<pid>-<index>``, its veth's far end inside with 10.<x>.<index>.2/30, this end 10.<x>.<index>.1/30."""
    tag = f"{os.getpid() % 10000}{index}"
    ns = Namespace(f"gl{tag}", f"glh{tag}", f"10.213.{index}.1", f"10.213.{index}.2")
    inside = f"gln{tag}"
    _ip("netns", "add", ns.name)
    try:
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.inside_ip}/30", "dev", inside)
        _ip("-n", ns.name, "link", "set", inside, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30, check=False)
