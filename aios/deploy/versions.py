"""The worker deployment's versions, and which one new runs go to (Temporal's routing config).

Workers of one deployment (AIOS_WORKER_DEPLOYMENT) each declare a version: their build id, the
hash of their code. A run is pinned to the version it started on and finishes there; new runs
go to the current version, or a ramping one for a share of them. `aios deploy` reads and moves
that routing through the client API (docs/ARCHITECTURE.md, "Deploys").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aios.errors import DeployRefused

IDENTITY = "aios deploy"
# retry=True on every deployment call: a deployment's state lives in a system workflow that
# answers through queries, and while it is busy (versions registering) the server refuses with
# "consistent query buffer is full" (RESOURCE_EXHAUSTED); the SDK's retry backs off and asks
# again for such codes (a failed full suite saw it once).
FIRST_VERSION_TRIES = 60  # half a second apart: a version exists once its first poller has polled


@dataclass(frozen=True)
class Version:
    build_id: str
    status: str  # current, ramping, draining, drained, inactive
    created: datetime | None
    deactivated: datetime | None  # when it last stopped being current (or ramping)
    running: int | None  # running runs pinned to it (None: visibility could not say)


@dataclass(frozen=True)
class Deployment:
    name: str
    current: str | None
    ramping: str | None
    ramp_percent: float
    versions: list[Version]


class Deployments:
    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name

    @property
    def _namespace(self) -> str:
        return self._client.namespace

    async def describe(self) -> Deployment:
        info = await self._info()
        routing = info.routing_config
        current = routing.current_deployment_version.build_id or None
        ramping = routing.ramping_deployment_version.build_id or None
        versions = [
            Version(
                build_id=summary.deployment_version.build_id,
                status=_status(summary.status),
                created=_time(summary.create_time),
                deactivated=_time(summary.last_deactivation_time),
                running=await self._running(summary.deployment_version.build_id),
            )
            for summary in info.version_summaries
        ]
        versions.sort(key=lambda v: v.created or datetime.min, reverse=True)
        return Deployment(self._name, current, ramping, routing.ramping_version_percentage, versions)

    async def _info(self) -> WorkerDeploymentInfo:
        try:
            response = await self._client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(namespace=self._namespace, deployment_name=self._name),
                retry=True,
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise DeployRefused(
                    f"no worker of deployment {self._name!r} has polled yet: start workers with "
                    f"AIOS_WORKER_DEPLOYMENT={self._name}"
                ) from error
            raise
        return response.worker_deployment_info

    async def _running(self, build_id: str) -> int | None:
        query = f"TemporalWorkerDeploymentVersion = '{self._name}:{build_id}' AND ExecutionStatus = 'Running'"
        try:
            return (await self._client.count_workflows(query)).count
        except RPCError:  # an older server's visibility lacks the attribute
            return None

    async def promote(self, build_id: str | None = None) -> str:
        """Make a version current (default: the newest one); new runs start on it."""
        target = build_id or await self._newest()
        await self._set_current(target)
        return target

    async def ramp(self, percent: float, build_id: str | None = None) -> str:
        """Send `percent` of new runs to a version (default: the newest one); 0 stops the ramp."""
        if not 0 <= percent <= 100:
            raise DeployRefused(f"the ramp is a percentage from 0 to 100, got {percent:g}")
        target = build_id or await self._newest()
        await self._call(
            self._client.workflow_service.set_worker_deployment_ramping_version(
                SetWorkerDeploymentRampingVersionRequest(
                    namespace=self._namespace,
                    deployment_name=self._name,
                    build_id=target,
                    percentage=percent,
                    identity=IDENTITY,
                ),
                retry=True,
            ),
            target,
        )
        return target

    async def rollback(self) -> str:
        """Make current again the version that stopped being current last (before the current one)."""
        deployment = await self.describe()
        earlier = [
            v for v in deployment.versions if v.build_id != deployment.current and v.deactivated is not None
        ]
        if not earlier:
            raise DeployRefused(f"deployment {self._name!r} has no earlier current version to roll back to")
        previous = max(earlier, key=lambda v: v.deactivated or datetime.min)
        await self._set_current(previous.build_id)
        return previous.build_id

    async def adopt_first(self, build_id: str) -> bool:
        """A new deployment's first version becomes current by itself; True when this one did."""
        for _ in range(FIRST_VERSION_TRIES):
            try:
                info = await self._info()
            except DeployRefused:  # this worker's pollers have not reached the server yet
                await asyncio.sleep(0.5)
                continue
            if info.routing_config.current_deployment_version.build_id:
                return False
            try:
                await self._set_current(build_id)
            except DeployRefused:
                await asyncio.sleep(0.5)
                continue
            return True
        return False

    async def _newest(self) -> str:
        deployment = await self.describe()
        candidates = [v for v in deployment.versions if v.build_id != deployment.current]
        if not candidates:
            raise DeployRefused(f"deployment {self._name!r} has no version besides the current one")
        return candidates[0].build_id

    async def _set_current(self, build_id: str) -> None:
        await self._call(
            self._client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=self._namespace,
                    deployment_name=self._name,
                    build_id=build_id,
                    identity=IDENTITY,
                ),
                retry=True,
            ),
            build_id,
        )

    async def _call(self, call: Awaitable[object], build_id: str) -> None:
        try:
            await call
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise DeployRefused(
                    f"deployment {self._name!r} has no version {build_id!r} with pollers: start its "
                    f"workers first, or see `aios deploy status` ({error.message})"
                ) from error
            raise


def _status(status: int) -> str:
    name = WorkerDeploymentVersionStatus.Name(status)  # type: ignore[arg-type]
    return name.removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()


def _time(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime() if stamp.seconds else None
