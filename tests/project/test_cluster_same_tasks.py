"""Local and cluster mode are one behaviour: these test files of the local engine run again on the
cluster engine, not as a second copy of the tests. (One file per group, so that the groups run on
different workers: together they were the suite's longest file.)"""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.cluster import run_on_the_cluster_engine


def test_the_same_tests_pass_on_the_cluster_engine(postgres_url, redis_url):
    if settings.CLAUDE_ENGINE == "cluster":
        pytest.skip("this is the run on the cluster engine")
    run_on_the_cluster_engine(
        ["tests/tasks/services/test_runs.py"],
        postgres_url=postgres_url,
        redis_url=redis_url,
    )
