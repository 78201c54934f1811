"""The HTTP API of a cluster node: `/cluster`, `/cluster/leases`, drain and undrain, and
the lease fields of `/status`, through the in-process ASGI caller."""

from __future__ import annotations

import trio

from jobdeck import Orchestrator
from jobdeck._http_app import create_app
from tests.core.test_http import AUTH, TOKEN, call

from .nodes import coordinator, make_node, running, sql, wait_until
from .test_membership import Hang, job


async def test_cluster_lists_the_nodes_and_slots(pg_dsn: str) -> None:
    """GET /cluster: each node's state, use, capacity, heartbeat, lease, skew and config
    match; a node with a different spec shows how it differs."""
    hang = Hang()

    def other(orch: Orchestrator) -> None:
        orch.register("job", hang, mode="triggered", max_retries=7)

    a = make_node(pg_dsn, "a", job(hang), capacity=2)
    b = make_node(pg_dsn, "b", other, capacity=0)
    app = create_app(a, token=TOKEN)
    # b first: the spec the cluster runs is the last node's to join (a's)
    async with running(b, a):
        await a.trigger("job")
        await hang.running.wait()
        reply = await call(app, "GET", "/cluster")
        leases = (await call(app, "GET", "/cluster/leases")).json()["leases"]
        hang.release.set()
    assert reply.status == 200
    body = reply.json()
    assert body["node"] == "a" and body["slots"] == {"used": 1, "max": 5}
    nodes = {n["name"]: n for n in body["nodes"]}
    assert set(nodes) == {"a", "b"}
    assert (nodes["a"]["used"], nodes["a"]["capacity"], nodes["b"]["capacity"]) == (1, 2, 0)
    assert nodes["a"]["this_node"] and not nodes["b"]["this_node"]
    assert nodes["a"]["state"] == "active" and nodes["a"]["config_match"]
    assert nodes["b"]["spec_differences"] == ["job: a different spec"]
    assert not nodes["b"]["config_match"]
    for node in nodes.values():
        assert 0 <= node["heartbeat_age_s"] < 30 and 0 < node["lease_expires_s"] <= 30
        assert node["host"] and node["pid"]
    ((token,),) = sql(pg_dsn, "SELECT token FROM jd_runs")
    assert [(x["worker"], x["node"], x["token"], x["phase"]) for x in leases] == [
        ("job", "a", token, "running")
    ]


async def test_status_workers_show_node_token_and_lease_expiry(pg_dsn: str) -> None:
    """/status on a node shows, for a run on another node, that node, its token and
    how long its lease has left."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang), capacity=0)
    b = make_node(pg_dsn, "b", job(hang))
    app = create_app(a, token=TOKEN)
    async with running(a, b):
        await a.trigger("job")
        await hang.running.wait()
        await wait_until(lambda: a.snapshot().worker("job").node == "b")
        status = (await call(app, "GET", "/status")).json()
        hang.release.set()
    (w,) = status["workers"]
    assert (w["state"], w["reason"], w["node"]) == ("running", "running on b", "b")
    assert w["lease_token"] == hang.tokens[0]
    assert 0 < w["lease_expires_s"] <= 30


async def test_a_drained_node_finishes_its_run_takes_no_more_until_undrained(
    pg_dsn: str,
) -> None:
    """POST /cluster/nodes/b/drain: b finishes what it runs, stays up and claims no new
    run; undrained, it runs the trigger that waited. An unknown node is 404."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang), capacity=0)
    b = make_node(pg_dsn, "b", job(hang))
    app = create_app(a, token=TOKEN)
    async with running(a, b):
        await a.trigger("job")
        await hang.running.wait()
        reply = await call(app, "POST", "/cluster/nodes/b/drain", headers=AUTH)
        assert (reply.status, reply.json()) == (200, {"node": "b", "state": "draining"})
        await wait_until(lambda: coordinator(b).draining)
        await a.trigger("job")
        hang.release.set()
        await wait_until(lambda: sql(pg_dsn, "SELECT count(*) FROM jd_runs"
                                             " WHERE status = 'succeeded'") == [(1,)])
        await trio.sleep(1.2)  # b's polls come and go: it takes nothing new
        assert hang.calls == 1 and not b.stopped
        assert sql(pg_dsn, "SELECT state FROM jd_triggers") == [("pending",)]
        reply = await call(app, "POST", "/cluster/nodes/b/undrain", headers=AUTH)
        assert reply.status == 200
        await wait_until(lambda: hang.calls == 2)
        missing = await call(app, "POST", "/cluster/nodes/zz/drain", headers=AUTH)
    assert missing.status == 404 and "no node named 'zz'" in missing.json()["error"]
