"""Worker versioning: the version a worker declares, and the first version's promotion.

Opt-in with AIOS_WORKER_DEPLOYMENT. Every Worker of the process (the main queue, each connector
queue) declares the same version, so a pinned run's activities find pollers of its version.
Runs are pinned: a run finishes on the code it started on (docs/ARCHITECTURE.md, "Deploys").
"""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from aios.deploy.build_id import code_build_id
from aios.deploy.versions import Deployments
from aios.settings import Settings

log = logging.getLogger("aios.worker")


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    if settings.worker_deployment is None:
        return None
    version = WorkerDeploymentVersion(settings.worker_deployment, build_id(settings))
    return WorkerDeploymentConfig(
        version=version, use_worker_versioning=True, default_versioning_behavior=VersioningBehavior.PINNED
    )


def build_id(settings: Settings) -> str:
    return settings.worker_build_id or code_build_id()


async def adopt_first_version(client: Client, settings: Settings) -> None:
    """A new deployment's first version becomes current; later ones wait for `aios deploy`."""
    if settings.worker_deployment is None:
        return
    mine = build_id(settings)
    try:
        if await Deployments(client, settings.worker_deployment).adopt_first(mine):
            log.info("deployment %s: version %s is current (its first)", settings.worker_deployment, mine)
        else:
            log.info(
                "deployment %s: version %s polls; `aios deploy promote` makes it current",
                settings.worker_deployment,
                mine,
            )
    except Exception:  # the worker serves its version either way; `aios deploy` can still promote
        log.warning("could not check deployment %s", settings.worker_deployment, exc_info=True)
