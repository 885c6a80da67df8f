"""Local and cluster mode are one behaviour: these test files of the local engine run again on the
cluster engine, not as a second copy of the tests. (One file per group, so that the groups run on
different workers: together they were the suite's longest file.)"""

from tests.cluster import run_on_the_cluster_engine


def test_the_same_tests_pass_on_the_cluster_engine(postgres_url, redis_url):
    run_on_the_cluster_engine(
        ["tests/chat/services/test_turns.py", "tests/chat/services/test_permissions.py"],
        postgres_url=postgres_url,
        redis_url=redis_url,
    )
