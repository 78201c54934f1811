"""Fuzz: arbitrary text through the HTTP API (lone surrogates, control characters).

Whatever a client sends as a trigger payload, and whatever text a worker then raises or
logs, the API answers without a 500, every later read is valid UTF-8 JSON, and the
engine keeps running.
"""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck import JobContext, Orchestrator
from tests.core.conftest import make_orchestrator
from tests.core.test_http import AUTH, call, serving, wait_until

#: Any code point, lone surrogates and control characters included.
anything = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | anything,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(anything, inner, max_size=4),
    max_leaves=12,
)


async def fails_with_its_payload(ctx: JobContext) -> None:
    ctx.log.warning("payload %s", ctx.payload)
    raise ValueError(repr(ctx.payload)[:200] + str(ctx.payload)[:200])


def decode(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


async def _scenario(payload: Any) -> None:
    orch: Orchestrator = make_orchestrator()
    orch.register("w", fails_with_its_payload, mode="triggered", max_retries=0)
    async with serving(orch) as app:
        body = json.dumps(payload).encode("utf-8", "surrogatepass")
        reply = await call(app, "POST", "/workers/w/trigger", body=body, headers=AUTH)
        assert reply.status in (202, 400), reply.body
        if reply.status == 202:
            await wait_until(orch, lambda: orch.snapshot().dlq_size == 1)
        for path in ("/status", "/dlq", "/healthz", "/metrics"):
            read = await call(app, "GET", path)
            assert read.status in (200, 503), (path, read.body)
            if path != "/metrics":
                decode(read.body)
        if reply.status == 202:
            entry_id = decode((await call(app, "GET", "/dlq")).body)["entries"][0]["id"]
            shown = await call(app, "GET", f"/dlq/{entry_id}")
            assert shown.status == 200
            decode(shown.body)
        for line in orch.logs("w"):
            line.message.encode("utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values)
def test_any_payload_text_keeps_the_api_and_engine_working(payload: Any) -> None:
    """Any JSON payload, however odd its text: no 500, reads stay UTF-8 JSON."""
    trio.run(_scenario, payload, clock=trio.testing.MockClock(autojump_threshold=0))
