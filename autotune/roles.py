"""Roles: how the tuner sees a job. The env and the policy never see raw PIDs.

* ``trainer``: the target process and its threads;
* ``loader``: the target's descendant processes (DataLoader workers, helpers) and their threads;
* ``other``: everything else on the node.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TRAINER = "trainer"
    LOADER = "loader"
    OTHER = "other"


ROLES: tuple[Role, ...] = (Role.TRAINER, Role.LOADER, Role.OTHER)
# Index of each role in per-role arrays (and the value the BPF maps use for it).
ROLE_INDEX: dict[Role, int] = {r: i for i, r in enumerate(ROLES)}
