"""The recovery tests of the local engine, run again on the cluster engine (see test_cluster_same_turns.py)."""

from tests.cluster import run_on_the_cluster_engine


def test_the_same_tests_pass_on_the_cluster_engine(postgres_url, redis_url):
    run_on_the_cluster_engine(["tests/chat/services/test_recovery.py"], postgres_url=postgres_url, redis_url=redis_url)
