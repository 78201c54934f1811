"""Reload: a config read again and applied to the running engine, without a restart.

The new config is compared with what runs: workers it adds are registered and start
(with what the store kept of them, if it knew them: their state and pending triggers);
workers it removes start no new run, finish the run they have in flight, and then go
(their pending triggers stay stored and come back with the worker); workers it changes
take the new spec at their next run (a run in flight keeps the spec it started with).
`[orchestrator]` keys apply at once, except those that only a start can apply
(`RESTART_KEYS`). Runtime state (enabled, circuit) is the engine's, not the file's:
it wins, as it does over the file at a restart.

A reload is checked first and applied whole or not at all: a graph with problems (the
messages of `jobdeck check`) changes nothing. Applying it is synchronous, with no
checkpoint in between, so nothing else on the trio thread sees half of it.
"""

from __future__ import annotations

import os

import attrs
import trio

from . import _events as ev
from ._config import JobdeckConfig, WorkerRegistration, load_config
from ._dispatcher import Dispatcher
from ._eligibility import Lifecycle
from ._engine import Engine, ParkedWorker
from ._errors import ConfigError, NotRunning
from ._graph import graph_problems, symmetric_blocks
from ._recovery import restore_worker
from ._runs import is_async
from ._runtime import QueuedTrigger, Replacement, WorkerRuntime
from ._spec import Mode, OrchestratorConfig

#: `[orchestrator]` keys a running orchestrator cannot take: they apply at the next start.
RESTART_KEYS = ("store",)
#: Spec keys that decide when a worker is due: changing one sets its schedule again.
_SCHEDULE_KEYS = ("mode", "interval_seconds", "cron", "timezone", "run_at_start",
                  "jitter_seconds")


@attrs.frozen(kw_only=True)
class ReloadResult:
    """What a reload changed, by name, in config order."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    #: `[orchestrator]` keys changed and applied now.
    orchestrator: tuple[str, ...] = ()
    #: `[orchestrator]` keys changed that apply only at the next start.
    restart_needed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        """The result as JSON-ready lists."""
        return {key: list(value) for key, value in attrs.asdict(self).items()}


def reload_file(
    engine: Engine, dispatcher: Dispatcher, path: str | os.PathLike[str]
) -> ReloadResult:
    """Read the config at `path` again and apply it (`apply_reload`).

    Raises:
        ConfigError: the config has problems (published as `config_reload_failed`);
            nothing was changed.
        NotRunning: the orchestrator is not running.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        engine.publish(ev.ConfigReloadFailed(ts=engine.now(), problems=tuple(exc.problems)))
        raise
    return apply_reload(engine, dispatcher, config)


def apply_reload(engine: Engine, dispatcher: Dispatcher, config: JobdeckConfig) -> ReloadResult:
    """Apply `config` to the running engine, whole or not at all.

    Raises:
        ConfigError: the workers refer to each other wrongly (unknown names, cycles);
            published as `config_reload_failed`. Nothing was changed.
        NotRunning: the orchestrator is not running (not started, or stopping).
    """
    if engine.lifecycle is not Lifecycle.RUNNING:
        raise NotRunning(f"cannot reload: the orchestrator is {engine.lifecycle.value}")
    registrations = {r.spec.name: r for r in config.workers}
    problems = graph_problems({name: r.spec for name, r in registrations.items()})
    if problems:
        engine.publish(ev.ConfigReloadFailed(ts=engine.now(), problems=tuple(problems)))
        raise ConfigError(problems)
    now = trio.current_time()
    current = engine.workers
    added: list[str] = []
    changed: list[str] = []
    for name, registration in registrations.items():
        w = current.get(name)
        if w is None:
            current[name] = _added_worker(engine, dispatcher, registration, now)
            added.append(name)
            continue
        if w.retiring:  # removed by an earlier reload and still running: it stays
            w.retiring = False
            added.append(name)
        elif _differs(w, registration):
            changed.append(name)
        else:
            continue
        replacement = Replacement(
            spec=registration.spec, fn=registration.fn, fn_ref=registration.fn_ref,
            is_async=is_async(registration.fn),
        )
        if w.in_flight:
            w.replacement = replacement
        else:
            apply_replacement(engine, dispatcher, w, replacement, now)
    removed = [name for name, w in current.items() if name not in registrations and not w.retiring]
    for name in removed:
        w = current[name]
        w.retiring = True
        w.replacement = None
        if not w.in_flight:
            retire(engine, dispatcher, w)
    _reorder(engine, list(registrations))
    engine.dependents = {name: [] for name in registrations}
    for name, registration in registrations.items():
        for dep in registration.spec.depends_on:
            engine.dependents[dep].append(name)
    engine.blockers = symmetric_blocks(r.spec for r in registrations.values())
    applied, restart_needed = _apply_orchestrator(engine, config.orchestrator)
    result = ReloadResult(
        added=tuple(added), removed=tuple(removed), changed=tuple(changed),
        orchestrator=applied, restart_needed=restart_needed,
    )
    # Every worker may start now (more slots, a blocker gone, a new worker due).
    dispatcher.ready.update(engine.workers)
    engine.health_watch.update(engine.workers)
    engine.notify()
    engine.publish(
        ev.ConfigReloaded(
            ts=engine.now(), added=result.added, removed=result.removed,
            changed=result.changed, orchestrator=result.orchestrator,
            restart_needed=result.restart_needed,
        )
    )
    return result


def settle_after_run(engine: Engine, dispatcher: Dispatcher, w: WorkerRuntime) -> bool:
    """A run of `w` has ended: apply what a reload left for then.

    Returns:
        False if the worker was removed and has now gone.
    """
    if w.retiring:
        retire(engine, dispatcher, w)
        return False
    if w.replacement is not None:
        apply_replacement(engine, dispatcher, w, w.replacement, trio.current_time())
    return True


def apply_replacement(
    engine: Engine, dispatcher: Dispatcher, w: WorkerRuntime, new: Replacement, now: float
) -> None:
    """Give an idle worker its new spec and function; set its schedule again if the keys
    that decide when it is due changed."""
    old = w.spec
    w.spec, w.fn, w.fn_ref, w.is_async = new.spec, new.fn, new.fn_ref, new.is_async
    w.first_states.clear()  # made from the old spec's max_retries
    w.replacement = None
    engine.health_watch.add(w.name)
    if any(getattr(old, key) != getattr(new.spec, key) for key in _SCHEDULE_KEYS):
        if new.spec.mode is not Mode.SCHEDULED:
            w.next_grid = w.next_due = None
        dispatcher.init_schedule(w, now)
    if new.spec.circuit_cooldown_seconds != old.circuit_cooldown_seconds:
        opened = w.breaker.opened_at
        if opened is not None and new.spec.circuit_cooldown_seconds:
            dispatcher.wake_at(opened + new.spec.circuit_cooldown_seconds, w)


def retire(engine: Engine, dispatcher: Dispatcher, w: WorkerRuntime) -> None:
    """Remove an idle worker from the engine; the store keeps its state and triggers."""
    name = w.name
    del engine.workers[name]
    dispatcher.ready.discard(name)
    engine.health_watch.discard(name)
    engine.attempting.discard(name)
    engine.unhealthy.pop(name, None)
    engine.pending_count -= len(w.pending)
    engine.parked[name] = ParkedWorker(
        state=engine.worker_state(w), triggers=tuple(q.trigger for q in w.pending)
    )
    engine.notify()


def _added_worker(
    engine: Engine, dispatcher: Dispatcher, registration: WorkerRegistration, now: float
) -> WorkerRuntime:
    spec = registration.spec
    w = WorkerRuntime(
        spec=spec, fn=registration.fn, fn_ref=registration.fn_ref, index=len(engine.workers),
        is_async=is_async(registration.fn), enabled=spec.enabled,
    )
    parked = engine.parked.pop(spec.name, None)
    if parked is not None:
        if parked.state is not None:
            restore_worker(engine, dispatcher, w, parked.state, now)
            # Its marks come after every other: its last success is not fresher than
            # what others did since, as far as the fresh-success rule can tell.
            if w.last_success is not None:
                w.last_success_seq = next(engine.seq)
            if w.last_start is not None:
                w.last_start_seq = next(engine.seq)
        for trigger in parked.triggers:
            w.queue(QueuedTrigger(trigger=trigger, queued_t=now))
            engine.pending_count += 1
    dispatcher.init_schedule(w, now)
    engine.health_watch.add(spec.name)
    return w


def _differs(w: WorkerRuntime, registration: WorkerRegistration) -> bool:
    spec = registration.spec
    # `params` is left out of a spec's equality (a dict): compared here by value.
    return (
        spec != w.spec
        or dict(spec.params) != dict(w.spec.params)
        or registration.fn_ref != w.fn_ref
    )


def _reorder(engine: Engine, order: list[str]) -> None:
    """The workers in the new config's order (it breaks dispatch ties), then those that
    are finishing their last run."""
    workers = engine.workers
    names = order + [name for name in workers if name not in set(order)]
    engine.workers = {name: workers[name] for name in names}
    for index, name in enumerate(names):
        engine.workers[name].index = index


def _apply_orchestrator(
    engine: Engine, new: OrchestratorConfig
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Apply the `[orchestrator]` keys that can change while running; returns the keys
    applied and the keys left for a restart."""
    old = engine.config
    differing = [
        f.name for f in attrs.fields(OrchestratorConfig)
        if getattr(old, f.name) != getattr(new, f.name)
    ]
    restart_needed = tuple(key for key in differing if key in RESTART_KEYS)
    applied = tuple(key for key in differing if key not in RESTART_KEYS)
    if not applied:
        return applied, restart_needed
    engine.config = attrs.evolve(new, **{key: getattr(old, key) for key in RESTART_KEYS})
    if engine.thread_limiter is not None:
        engine.thread_limiter.total_tokens = engine.config.max_concurrent_workers
    engine.logs.resize(engine.config.log_lines_per_worker)
    history = getattr(engine.store, "history_per_worker", None)
    if history is not None and history != engine.config.history_per_worker:
        engine.store.history_per_worker = engine.config.history_per_worker  # type: ignore[attr-defined]
    engine.forget_world()
    return applied, restart_needed

