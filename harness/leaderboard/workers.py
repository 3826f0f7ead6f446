"""Spreading a leaderboard over workers: one model per worker (its tasks run back to back on a
model loaded once). Workers are processes (one per GPU when there are GPUs, each seeing only its
own through CUDA_VISIBLE_DEVICES; else N processes sharing the CPU cores) or Ray tasks (one GPU
each on a cluster). Workers report cell events to the parent, which draws the one progress
display; a worker's exception reaches the parent."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: fn(job, emit) -> result; emit(event, cell_id, detail) reports progress to the parent
JobFn = Callable[[Any, Callable[..., None]], Any]


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    threads: int  # torch intra-op threads per worker
    devices: tuple[str, ...]  # CUDA_VISIBLE_DEVICES of each worker ("" = no GPU)

    def describe(self) -> str:
        if self.workers <= 1:
            where = f"GPU {self.devices[0]}" if self.devices and self.devices[0] else "CPU"
            return f"1 process ({where}, {self.threads} torch threads)"
        gpus = [d for d in self.devices if d]
        where = f"one GPU each ({', '.join(gpus)})" if gpus else "sharing the CPU"
        return (f"{self.workers} processes, one model per process at a time, {where}, "
                f"{self.threads} torch thread(s) each")


def plan_workers(workers: int | None = None, cpus: int | None = None,
                 gpus: int | None = None) -> WorkerPlan:
    """One worker per GPU by default (else one); CPU cores split evenly between workers."""
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cpus = cpus or os.cpu_count() or 1
    n = workers or max(1, gpus)
    devices = tuple(str(i % gpus) if gpus else "" for i in range(n))
    return WorkerPlan(n, max(1, cpus // n), devices)


def run_jobs(fn: JobFn, jobs: Sequence[Any], plan: WorkerPlan,
             on_event: Callable[..., None]) -> list[Any]:
    """Run fn on every job (in this process when one worker), results in completion order."""
    if plan.workers <= 1 or len(jobs) <= 1:
        _init_worker(None, plan.threads, plan.devices[0] if plan.devices else None)
        return [fn(job, on_event) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no forked torch state, same on every OS
    with ctx.Manager() as manager:
        events, devices = manager.Queue(), manager.Queue()
        for d in plan.devices:
            devices.put(d)
        drain = threading.Thread(target=_drain, args=(events, on_event), daemon=True)
        drain.start()
        try:
            with ProcessPoolExecutor(min(plan.workers, len(jobs)), mp_context=ctx,
                                     initializer=_init_worker,
                                     initargs=(devices, plan.threads, None)) as pool:
                futures = [pool.submit(_call, fn, job, events) for job in jobs]
                return [f.result() for f in as_completed(futures)]
        finally:
            events.put(None)
            drain.join(timeout=10)


def _drain(events: Any, on_event: Callable[..., None]) -> None:
    while True:
        e = events.get()
        if e is None:
            return
        on_event(*e)


def _init_worker(devices: Any, threads: int, device: str | None) -> None:
    """Give this worker its GPU (before CUDA is initialised) and its share of the CPU."""
    if devices is not None:
        device = devices.get()
    if device:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import torch

    torch.set_num_threads(threads)


def _call(fn: JobFn, job: Any, events: Any) -> Any:
    return fn(job, lambda *e: events.put(e))


def run_jobs_ray(fn: JobFn, jobs: Sequence[Any], on_event: Callable[..., None],
                 address: str | None = None, gpus_per_job: float | None = None) -> list[Any]:
    """The same jobs as Ray tasks (one GPU each when the cluster has GPUs): for clusters."""
    import ray
    from ray.util.queue import Queue

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if gpus_per_job is None:
        gpus_per_job = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    events = Queue()
    remote = ray.remote(num_gpus=gpus_per_job, num_cpus=1)(_call_ray)
    pending = [remote.remote(fn, job, events) for job in jobs]
    results = []
    while pending:
        done, pending = ray.wait(pending, timeout=0.2)
        while not events.empty():
            on_event(*events.get())
        results += ray.get(done)
    while not events.empty():
        on_event(*events.get())
    return results


def _call_ray(fn: JobFn, job: Any, events: Any) -> Any:
    return fn(job, lambda *e: events.put(e))
