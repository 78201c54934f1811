"""What a cluster node knows of the rest of the cluster, for its snapshots.

In cluster mode the database holds the pending triggers and the leases of every node; a
node keeps a copy of what its snapshots show (refreshed on wake-ups by `_pg_view`, at
most a few times a second), so a snapshot never waits on a query. In local mode there
is none (`Engine.cluster` is None) and snapshots cost what they always did.
"""

from __future__ import annotations

import attrs

from ._records import Trigger


@attrs.define(kw_only=True)
class LeaseView:
    """A worker's live lease, as last read."""

    node: str
    token: int
    #: `running` or `retry_wait`.
    phase: str
    #: trio time the holding node's lease runs out (unless it heartbeats again).
    expires_t: float


@attrs.frozen(kw_only=True)
class ClusterFigures:
    """The cluster's shared figures, as last read (the same on every node that read them
    at the same moment: metrics label them `scope="cluster"`)."""

    #: live nodes (lease not expired) by state: `active`, `draining`.
    nodes_active: int
    nodes_draining: int
    #: runs holding a cluster slot (leases `running`), and the cluster's limit.
    slots_used: int
    slots_max: int
    #: live leases, running or waiting to retry.
    leases: int
    dlq_size: int


@attrs.define(kw_only=True)
class ClusterView:
    """The cluster as this node last read it."""

    #: this node's name.
    node: str
    #: worker -> its live lease, on whichever node holds it.
    leases: dict[str, LeaseView] = attrs.field(factory=dict)
    #: worker -> pending triggers (over the cluster).
    pending: dict[str, int] = attrs.field(factory=dict)
    #: worker -> its oldest pending triggers (at most `PENDING_SHOWN`), oldest first:
    #: read only for the workers someone asked about lately (`asked`).
    pending_triggers: dict[str, list[Trigger]] = attrs.field(factory=dict)
    #: worker -> trio time `pending_triggers(worker)` was last asked for.
    asked: dict[str, float] = attrs.field(factory=dict)
    #: worker -> (the node lost while running it, trio time it was reaped).
    lost: dict[str, tuple[str, float]] = attrs.field(factory=dict)
    #: the cluster's shared figures (None until the first refresh).
    figures: ClusterFigures | None = None
    #: trio time this node's own lease runs out, as last read.
    own_expires_t: float | None = None
    #: trio time of the last refresh (-inf: never).
    refreshed_t: float = -float("inf")
    #: the database, for people: `pg://host/db` (never the password).
    store: str = ""
    #: runs in flight on this node when the cluster's figures were read (snapshots add
    #: what this node started or ended since).
    own_used: int = 0
    #: this node's `capacity`.
    capacity: int = 0
    #: `active`, `draining` (an operator drained it) or `fenced` (it could not
    #: heartbeat, and claims nothing until it can).
    node_state: str = "active"
    #: the listener holds its connection (and this node's lock): wake-ups come at once.
    listener_ok: bool = False

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())


#: Pending triggers kept per worker for `Orchestrator.pending_triggers`.
PENDING_SHOWN = 20
#: Seconds a worker's pending triggers are read on each refresh after they were asked for.
ASKED_KEPT_S = 10.0
