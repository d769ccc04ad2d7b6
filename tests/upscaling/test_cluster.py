"""Running chunks on a cluster: the cluster's own log lines kept quiet."""

from __future__ import annotations

import logging

from fluxbridge.upscaling.cluster import quiet_cluster_logs


def test_cluster_logs_quiet_unless_debug():
    fb, dist = logging.getLogger("fluxbridge"), logging.getLogger("distributed.scheduler")
    old, before = fb.level, logging.getLogger("distributed").level
    try:
        fb.setLevel(logging.INFO)
        with quiet_cluster_logs():
            assert not dist.isEnabledFor(logging.INFO)  # no scheduler start-up chatter
            assert dist.isEnabledFor(logging.WARNING)
        assert logging.getLogger("distributed").level == before
        fb.setLevel(logging.DEBUG)  # --debug keeps them
        with quiet_cluster_logs():
            assert logging.getLogger("distributed").level == before
    finally:
        fb.setLevel(old)
