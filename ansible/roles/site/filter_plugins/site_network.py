"""Filters of the site preflight: which routes of `ip -o route` overlap the CI stack's network."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_PREFIXES = {"local", "broadcast", "unicast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw"}


def site_route_conflicts(routes: str, network: str) -> list[str]:
    """The route lines (one per line, as `ip -o route` prints them) whose destination overlaps `network`.

    Docker's own bridge for exactly that network (a `br-*` device) is the stack itself, not a collision.
    """
    wanted = ipaddress.ip_network(network, strict=False)
    conflicts = []
    for line in routes.splitlines():
        words = line.split()
        if words and words[0] in _PREFIXES:
            words = words[1:]
        if not words or words[0] == "default" or not re.match(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$", words[0]):
            continue
        destination = ipaddress.ip_network(words[0], strict=False)
        device = words[words.index("dev") + 1] if "dev" in words[:-1] else ""
        if destination == wanted and device.startswith("br-"):
            continue
        if destination.overlaps(wanted):
            conflicts.append(line.strip())
    return conflicts


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"site_route_conflicts": site_route_conflicts}
