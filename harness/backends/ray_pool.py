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
    """One Ray actor: loads the backend once, then scores whole chunks on request."""

    def __init__(self, spec: str) -> None:
        from harness.backends import load_backend

        self.backend = load_backend(spec)

    def fingerprint(self) -> Fingerprint:
        return self.backend.fingerprint()

    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    def score(self, job: tuple[int, list[str]]) -> tuple[int, list[np.ndarray]]:
        n, texts = job
        return n, self.backend.token_logprobs(texts)

    def generate(self, *args: Any, **kwargs: Any) -> list[list[str]]:
        return self.backend.generate(*args, **kwargs)


class RayBackend:
    """A Backend whose scoring is spread over `workers` Ray actors.

    Args:
        spec: model spec string, loaded by every actor with ``load_backend`` (e.g.
            ``hf:./model,dtype=bfloat16``).
        workers: number of actors (model replicas).
        address: an existing Ray cluster (``ray://host:10001`` or ``auto``); None joins the
            instance already initialised in this process, else starts a local one.
        gpus_per_worker: GPUs each actor reserves; None = 1 if the cluster has a GPU per
            worker, else 0.
    """

    name = "ray"

    def __init__(
        self,
        spec: str,
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
        self.spec, self.workers = spec, workers
        self._started = False
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
        self.actors = [actor.remote(spec) for _ in range(workers)]
        try:
            fingerprints = ray.get([a.fingerprint.remote() for a in self.actors])
        except Exception as e:  # an actor's load error arrives wrapped by Ray
            self.close()
            raise BackendError(f"Ray workers could not load {spec!r}: {e}") from e
        digests = {fp.digest() for fp in fingerprints}
        if len(digests) != 1:
            self.close()
            raise BackendError(
                f"Ray workers loaded {spec!r} with {len(digests)} different fingerprints "
                "(mixed devices or library versions?); their scores would not be comparable"
            )
        self._fingerprint: Fingerprint = fingerprints[0]
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._ray.get(self.actors[0].tokenizer.remote())
        return self._tokenizer

    def fingerprint(self) -> Fingerprint:
        """The workers' fingerprint (all checked equal): it keys the cache and the report."""
        return self._fingerprint

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """A direct call is one chunk: scored whole by one actor, as locally."""
        return self._ray.get(self.actors[0].score.remote((0, list(texts))))[1]

    def map_chunks(
        self, jobs: Iterable[tuple[int, list[str]]]
    ) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Score (number, texts) chunks across the actors; yield each as it completes."""
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        yield from pool.map_unordered(lambda a, job: a.score.remote(job), list(jobs))

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        """Generation runs on one actor, so seeded sampling matches a local run exactly."""
        return self._ray.get(
            self.actors[0].generate.remote(list(prompts), max_new_tokens, n, temperature, seed)
        )

    def close(self) -> None:
        """Stop the actors, and the local Ray instance if this backend started it."""
        for a in getattr(self, "actors", []):
            try:
                self._ray.kill(a)
            except Exception:  # already dead
                pass
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False
