"""Scale scoring past one process: Ray actors, each holding a backend built from the spec string.

The unit of work is a scoring chunk (see :mod:`harness.scoring`): every chunk is scored whole
by one actor, with the same backend call the single-process path makes, so results are identical
to a local run on the same kind of device, and each chunk reaches the driver's score cache as
soon as it completes. Needs the optional extra ``tdp-harness[ray]``; on a remote cluster every
node needs tdp-harness (and the model) installed or shipped in a Ray runtime environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from harness.backends.base import BackendError, Fingerprint


class _Worker:
    """One Ray actor: loads every backend of the pool once, then scores whole chunks."""

    def __init__(self, specs: list[str]) -> None:
        from harness.backends import load_backend

        self.backends = [load_backend(spec) for spec in specs]

    def fingerprints(self) -> list[Fingerprint]:
        return [b.fingerprint() for b in self.backends]

    def tokenizer(self, which: int) -> Any:
        return self.backends[which].tokenizer

    def score(self, which: int, job: tuple[int, list[str]]) -> tuple[int, list[np.ndarray]]:
        n, texts = job
        return n, self.backends[which].token_logprobs(texts)

    def generate(self, which: int, *args: Any) -> list[list[str]]:
        return self.backends[which].generate(*args)


class RayPool:
    """`workers` Ray actors, each holding one backend per spec (e.g. target and reference).

    Args:
        specs: model spec strings, loaded by every actor with ``load_backend`` (e.g.
            ``hf:./model,dtype=bfloat16``). Holding all of them in each actor mirrors the
            single-process run and keeps one actor per CPU/GPU slot.
        workers: number of actors (replicas of every model).
        address: an existing Ray cluster (``ray://host:10001`` or ``auto``); None joins the
            instance already initialised in this process, else starts a local one.
        gpus_per_worker: GPUs each actor reserves; None = 1 if the cluster has a GPU per
            worker, else 0.
    """

    def __init__(
        self,
        specs: Sequence[str],
        workers: int,
        address: str | None = None,
        gpus_per_worker: float | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise BackendError(
                f"--ray-workers needs Ray, which is not installed ({e}); "
                "try `pip install 'tdp-harness[ray]'`"
            ) from e
        if workers < 1:
            raise BackendError(f"need at least one Ray worker, got {workers}")
        self._ray = ray
        self.specs, self.workers = list(specs), workers
        self._started = False
        self.actors: list[Any] = []
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                else:
                    cpus = max(workers, os.cpu_count() or 1)
                    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            except Exception as e:  # connection/startup errors come in many types
                raise BackendError(f"cannot start or join Ray (address {address!r}): {e}") from e
            self._started = True
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) >= workers else 0.0
        actor = ray.remote(_Worker).options(num_cpus=1, num_gpus=gpus_per_worker)
        self.actors = [actor.remote(self.specs) for _ in range(workers)]
        try:
            per_actor = ray.get([a.fingerprints.remote() for a in self.actors])
        except Exception as e:  # an actor's load error arrives wrapped by Ray
            self.close()
            raise BackendError(f"Ray workers could not load {self.specs}: {e}") from e
        self.fingerprints: list[Fingerprint] = per_actor[0]
        for i, spec in enumerate(self.specs):
            digests = {fps[i].digest() for fps in per_actor}
            if len(digests) != 1:
                self.close()
                raise BackendError(
                    f"Ray workers loaded {spec!r} with {len(digests)} different fingerprints "
                    "(mixed devices or library versions?); their scores would not be comparable"
                )

    def backend(self, which: int = 0) -> RayBackend:
        """The Backend view of the pool's `which`-th model."""
        return RayBackend(self, which)

    def close(self) -> None:
        """Stop the actors, and the local Ray instance if this pool started it."""
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:  # already dead
                pass
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False


class RayBackend:
    """A Backend whose scoring is spread over the actors of a :class:`RayPool`."""

    name = "ray"

    def __init__(self, pool: RayPool, which: int = 0) -> None:
        self.pool, self.which = pool, which
        self._ray = pool._ray
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._ray.get(self.pool.actors[0].tokenizer.remote(self.which))
        return self._tokenizer

    def fingerprint(self) -> Fingerprint:
        """The workers' fingerprint (checked equal on all): it keys the cache and the report."""
        return self.pool.fingerprints[self.which]

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """A direct call is one chunk: scored whole by one actor, as locally."""
        job = (0, list(texts))
        return self._ray.get(self.pool.actors[0].score.remote(self.which, job))[1]

    def map_chunks(
        self, jobs: Iterable[tuple[int, list[str]]]
    ) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Score (number, texts) chunks across the actors; yield each as it completes."""
        from ray.util import ActorPool

        which = self.which
        pool = ActorPool(self.pool.actors)
        yield from pool.map_unordered(lambda a, job: a.score.remote(which, job), list(jobs))

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """Generation runs on one actor, so seeded sampling matches a local run exactly."""
        actor = self.pool.actors[0]
        return self._ray.get(
            actor.generate.remote(self.which, list(prompts), max_new_tokens, n, temperature, seed)
        )
