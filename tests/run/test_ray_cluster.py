"""A Ray cluster that loses a node mid-point: the point is retried on a node that is left.

``ray.cluster_utils.Cluster`` starts a real multi-node cluster on this machine: a
head with no CPUs, so every actor is placed on a worker node, and two worker
nodes of one CPU each, one actor apiece. Removing a node kills its raylet and
every actor on it, as a machine that drops off the network does; the executor
must see the actor's death, retry the point on the other node's actor, and give
every point the in-process loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import DataConfig, TrainConfig
from core.run.executors import Executor, JobDone, JobProgress, JobRetried, PointJob
from core.run.executors.execute import FAULTS_ENV
from core.run.executors.local import LocalExecutor
from core.training.data import TaskData, load_task
from core.training.models import resolve_model
from tests.run.jobs import drain, losses

pytestmark = pytest.mark.slow  # three raylets on two cores: about a minute

TRAIN = TrainConfig(batch_size=4, min_steps=400, learning_rate=1e-3)
DATA = DataConfig(test_size=16, validation_size=8, max_length=32)
MB = 2**20


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[object, list[object]]]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": 80 * MB},
    )
    nodes = [c.add_node(num_cpus=1, object_store_memory=80 * MB) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _node_of(nodes: list[object], pid: int) -> object:
    """The cluster node whose raylet started the actor process ``pid``."""
    raylet = _parent(pid)
    return next(n for n in nodes if n.all_processes["raylet"][0].process.pid == raylet)  # type: ignore[attr-defined]


def test_a_point_on_a_lost_node_is_retried_on_the_node_left(
    zoo_cache: Path,
    cluster: tuple[object, list[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    c, nodes = cluster
    task: TaskData = load_task(DATA)
    spec = resolve_model("tiny:gpt2-s", cache_dir=zoo_cache)
    jobs = [
        PointJob(i, spec, size, TRAIN, DATA, task.fingerprint) for i, size in enumerate((16, 32))
    ]
    with LocalExecutor(task, "cpu") as local:
        for job in jobs:
            local.submit(job)
        want = losses(drain(local, len(jobs), limit=300.0))

    from core.run.executors.ray_backend import RayExecutor

    ex = RayExecutor(None, 2, threads=1, retries=1)
    lost: list[str] = []
    with ex:
        ex.load(task)
        for job in jobs:
            ex.submit(job)

        def lose_node(executor: Executor, update: object) -> None:
            if isinstance(update, JobProgress) and not lost:
                slot = next(
                    s for s in executor.slots if s.job is not None and s.job.id == update.job_id
                )
                lost.append(slot.name)
                c.remove_node(_node_of(nodes, slot.pid), allow_graceful=False)  # type: ignore[attr-defined]

        got = drain(ex, len(jobs), limit=300.0, on_update=lose_node)
    retried = [u for u in got if isinstance(u, JobRetried)]
    assert len(retried) == 1 and retried[0].worker == lost[0]
    assert "died" in retried[0].reason
    done = {u.job_id: u for u in got if isinstance(u, JobDone)}
    assert set(done) == {j.id for j in jobs}, "every point finished, on the node left"
    assert done[retried[0].job.id].worker != lost[0]
    for job_id, loss in want.items():
        assert math.isclose(done[job_id].result.loss, loss, abs_tol=1e-5), job_id
