"""Schedule triggers: each `triggers.schedule` entry of a manifest is a Temporal Schedule.

`aios agents apply` makes the Schedules match the manifests in the agents directory: it creates
the missing ones, updates the changed ones (keeping their paused state: pausing is the
operator's, not the manifest's) and deletes the ones aios owns whose trigger is gone. It is an
explicit command rather than a step of worker start-up: with several workers, each restart would
re-apply whatever manifests that machine holds, and a manifest edit should take effect when its
author says so, like `kubectl apply`. Applying twice, or from two processes, ends the same.

A Schedule carries the manifest as applied: a manifest edit takes effect at the next apply, on
every worker alike. A Schedule never starts AgentRun: its action starts DispatchRun
(workflows/dispatch.py), which hands a `StartRequest` to admission, so budget, kill switch and
canary apply to every firing.
The manifest's overlap policy is Temporal's own (skip, buffer one, allow all): DispatchRun waits
for the run it started to end unless overlap is `allow`, so "the previous firing is still going"
means its run is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from aios.errors import ScheduleNotFound
from aios.models.manifest import AgentManifest
from aios.models.run import Cause, CauseKind
from aios.models.start import StartRequest
from aios.models.triggers import ScheduleTrigger

SCHEDULE_PREFIX = "aios-schedule-"
DISPATCH_WORKFLOW = "DispatchRun"
# Temporal appends each firing's time to this id, which gives every firing its own run id.
DISPATCH_PREFIX = "dispatch-"
OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow": ScheduleOverlapPolicy.ALLOW_ALL,
}


def schedule_id(agent: str, trigger: str) -> str:
    return f"{SCHEDULE_PREFIX}{agent}.{trigger}"


def schedule_name(identifier: str) -> str:
    """`refund-desk/nightly` for `aios-schedule-refund-desk.nightly`."""
    return identifier.removeprefix(SCHEDULE_PREFIX).replace(".", "/", 1)


def resolve_schedule_id(name: str) -> str:
    """The Schedule's id from `agent/trigger` or the id itself."""
    if name.startswith(SCHEDULE_PREFIX):
        return name
    agent, slash, trigger = name.partition("/")
    if not slash or not agent or not trigger:
        raise ScheduleNotFound(
            f"no schedule named {name!r}: name it AGENT/SCHEDULE (see `aios schedules list`)"
        )
    return schedule_id(agent, trigger)


def build_schedule(manifest: AgentManifest, trigger: ScheduleTrigger, task_queue: str) -> Schedule:
    request = StartRequest(
        agent=manifest.name,
        task=trigger.task,
        cause=Cause(kind=CauseKind.SCHEDULE, ref=f"{manifest.name}/{trigger.name}"),
        # The manifest as applied: what runs is what the operator applied, whichever worker runs it.
        manifest=manifest,
        await_end=trigger.overlap != "allow",
    )
    spec = ScheduleSpec(
        cron_expressions=[trigger.cron] if trigger.cron else [],
        intervals=[ScheduleIntervalSpec(every=trigger.every)] if trigger.every else [],
        jitter=trigger.jitter or None,
        time_zone_name=trigger.timezone,
    )
    action = ScheduleActionStartWorkflow(
        DISPATCH_WORKFLOW,
        request,
        id=f"{DISPATCH_PREFIX}{manifest.name}.{trigger.name}",
        task_queue=task_queue,
        static_summary=f"{manifest.name}: schedule {trigger.name}",
    )
    policy = SchedulePolicy(overlap=OVERLAP[trigger.overlap], catchup_window=trigger.catchup_window)
    return Schedule(action=action, spec=spec, policy=policy, state=ScheduleState(note="aios agents apply"))


@dataclass(frozen=True)
class Applied:
    created: list[str]
    updated: list[str]
    deleted: list[str]
    # Set by AiosClient.apply, which also applies event subscriptions (aios/events/subscriptions.py).
    subscribed: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)


async def apply_schedules(
    client: Client, manifests: list[AgentManifest], task_queue: str, *, every_agent: bool = True
) -> Applied:
    """Make aios's Schedules match `manifests`: create, update, delete; safe to repeat.

    With `every_agent`, `manifests` are all there are, and the Schedules of agents without one
    go too; otherwise only the listed agents' Schedules are touched.
    """
    wanted = {
        schedule_id(manifest.name, trigger.name): build_schedule(manifest, trigger, task_queue)
        for manifest in manifests
        for trigger in manifest.triggers.schedule
    }
    existing = await owned_schedule_ids(client)
    if not every_agent:
        prefixes = tuple(schedule_id(manifest.name, "") for manifest in manifests)
        existing = {identifier for identifier in existing if identifier.startswith(prefixes)}
    created, updated = [], []
    for identifier, schedule in wanted.items():
        if await put_schedule(client, identifier, schedule, keep_pause=True):
            created.append(schedule_name(identifier))
        else:
            updated.append(schedule_name(identifier))
    deleted = []
    for identifier in sorted(existing - wanted.keys()):
        await drop_schedule(client, identifier)  # gone already: another apply deleted it first
        deleted.append(schedule_name(identifier))
    return Applied(created=created, updated=updated, deleted=deleted)


async def put_schedule(
    client: Client, identifier: str, schedule: Schedule, *, keep_pause: bool = False
) -> bool:
    """Create the Schedule, or give the existing one this action, spec and policy; True when
    created. With `keep_pause`, its paused state and note stay: they are the operator's
    (`aios schedules pause`); aios's own daily Schedules are replaced whole."""
    try:
        await client.create_schedule(identifier, schedule, memo={"owner": "aios"})
        return True
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            if not keep_pause:
                return ScheduleUpdate(schedule=schedule)
            state = current.description.schedule.state
            kept = ScheduleState(note=state.note, paused=state.paused)
            return ScheduleUpdate(
                schedule=Schedule(
                    action=schedule.action, spec=schedule.spec, policy=schedule.policy, state=kept
                )
            )

        await client.get_schedule_handle(identifier).update(replace)
        return False


async def drop_schedule(client: Client, identifier: str) -> bool:
    """Delete the Schedule; False when there was none."""
    try:
        await client.get_schedule_handle(identifier).delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def owned_schedule_ids(client: Client) -> set[str]:
    return {
        listed.id async for listed in await client.list_schedules() if listed.id.startswith(SCHEDULE_PREFIX)
    }


@dataclass(frozen=True)
class ScheduleView:
    name: str
    spec: str
    paused: bool
    note: str
    next_fires: list[datetime]
    recent_fires: list[datetime]
    overlap: str


async def describe_schedules(client: Client) -> list[ScheduleView]:
    views = []
    for identifier in sorted(await owned_schedule_ids(client)):
        try:
            views.append(await describe_schedule(client, identifier))
        except ScheduleNotFound:  # deleted between the listing and now
            continue
    return views


async def describe_schedule(client: Client, identifier: str) -> ScheduleView:
    handle = await _existing(client, identifier)
    described = await handle.describe()
    schedule, info = described.schedule, described.info
    return ScheduleView(
        name=schedule_name(identifier),
        spec=_spec_text(schedule.spec),
        paused=schedule.state.paused,
        note=schedule.state.note or "",
        next_fires=list(info.next_action_times[:3]),
        recent_fires=[action.scheduled_at for action in info.recent_actions[-3:]],
        overlap=schedule.policy.overlap.name.lower(),
    )


async def _existing(client: Client, identifier: str) -> ScheduleHandle:
    handle = client.get_schedule_handle(identifier)
    try:
        await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleNotFound(
                f"no schedule {schedule_name(identifier)!r}: `aios schedules list` shows them; "
                f"`aios agents apply` creates those the manifests declare"
            ) from error
        raise
    return handle


async def trigger_schedule(client: Client, identifier: str) -> None:
    """Fire now, as if its time had come (its overlap policy still applies)."""
    await (await _existing(client, identifier)).trigger()


async def set_schedule_paused(client: Client, identifier: str, paused: bool, note: str) -> None:
    handle = await _existing(client, identifier)
    await (handle.pause(note=note) if paused else handle.unpause(note=note))


def _spec_text(spec: ScheduleSpec) -> str:
    parts: list[Any] = [*spec.cron_expressions]
    parts += [f"every {interval.every}" for interval in spec.intervals]
    # The server keeps a cron expression as calendars: shown back in cron's five fields.
    parts += [_as_cron(calendar) for calendar in spec.calendars]
    zone = f" ({spec.time_zone_name})" if spec.time_zone_name else ""
    return ", ".join(str(part) for part in parts) + zone


def _as_cron(calendar: ScheduleCalendarSpec) -> str:
    fields = (calendar.minute, calendar.hour, calendar.day_of_month, calendar.month, calendar.day_of_week)
    everything = ((1, 31), (1, 12), (0, 6))  # what `*` means for the last three fields
    texts = [_ranges(ranges) for ranges in fields]
    for index, (low, high) in enumerate(everything, start=2):
        if [(each.start, each.end or each.start, each.step or 1) for each in fields[index]] == [
            (low, high, 1)
        ]:
            texts[index] = "*"
    return " ".join(texts)


def _ranges(ranges: Sequence[ScheduleRange]) -> str:
    parts = []
    for each in ranges:
        end = each.end if each.end > each.start else each.start
        text = str(each.start) if end == each.start else f"{each.start}-{end}"
        parts.append(text + (f"/{each.step}" if each.step > 1 else ""))
    return ",".join(parts) or "*"
