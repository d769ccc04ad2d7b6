"""Running chunks on a cluster: the cluster's own log lines kept quiet; a lost worker is one
line."""

from __future__ import annotations

import logging
import os

import pytest

from fluxbridge.errors import ClusterError
from fluxbridge.upscaling.cluster import quiet_cluster_logs, task_result


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


def test_a_worker_that_dies_is_one_line_and_task_errors_pass_unchanged():
    import dask
    from dask.distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), quiet_cluster_logs(), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        assert task_result(client.submit(sum, [1, 2])) == 3
        with pytest.raises(ZeroDivisionError):  # the task's own error: not the cluster's
            task_result(client.submit(divmod, 1, 0))
        with pytest.raises(ClusterError) as info:
            task_result(client.submit(os._exit, 1, key="chunk-7"))
    message = str(info.value)
    assert "died while computing chunk chunk-7" in message and "run the command again" in message
    assert "\n" not in message
