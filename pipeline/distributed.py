"""Ray, for the stages whose work outgrows one machine (download shards, hashing a folder)."""

from __future__ import annotations

import os

from .errors import PipelineError


def ray_module():
    """The ``ray`` module, connected to the cluster at ``RAY_ADDRESS`` or to a local Ray."""
    try:
        import ray
    except ImportError:
        raise PipelineError("EXECUTOR=ray needs Ray: pip install 'synsetforge[ray]'") from None
    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
    return ray
