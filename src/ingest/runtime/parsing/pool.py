"""The self-healing process pool the parse jobs run in, and the budgets inside its workers.

One job: `ParsePool`, an `Executor` over a `ProcessPoolExecutor` whose jobs run
under CPU and memory budgets and which outlives its workers.  It does not know
what a job does (`ingest.runtime.parsing.jobs` holds the parse job and starts the pools),
does no I/O beyond its marker files, and decides nothing about what to store.

The budgets (`bounds.ParseLimits`, from `settings: parse_cpu` and
`parse_memory`) are the last two of the three layers `ingest.runtime.parsing.jobs`
describes:

- In the worker, a CPU timer (`ITIMER_PROF`) interrupts a job that used
  `parse_cpu` seconds of CPU, and `RLIMIT_AS` makes an allocation past
  `parse_memory` more than the worker held before fail with MemoryError:
  both end as a clean per-source parse error, and the worker lives on
  (`budget`).
- A job stuck inside C code, where no Python signal handler runs, is killed
  by the kernel: `RLIMIT_CPU` is re-armed at each job to twice the budget
  plus 2 s.  The pool then breaks, and `ParsePool` replaces the workers:
  jobs that had not started go to the new workers; jobs that were running
  (each job leaves a marker file while it runs) are retried one by one in a
  worker of their own, where the culprit dies again and becomes a parse
  error, and the innocent ones complete.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from ingest import errors
from ingest.stages.bounds import ParseLimits

__all__ = ["OverBudget", "ParsePool", "become_worker", "budget", "forkserver_executor"]

log = logging.getLogger("ingest.workers")  # the name it had before the pool had its own module
P = ParamSpec("P")
T = TypeVar("T")
MAX_ATTEMPTS = 3  # a job sent to fresh workers this often after breakages is given up
KERNEL_GRACE = 2  # seconds of CPU past twice the budget before the kernel kills a worker


def forkserver_executor(workers: int) -> ProcessPoolExecutor:
    """`workers` processes started from a forkserver that has imported only the parsing stack."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["ingest.runtime.parsing.jobs", "ingest.stages.parse.feed", "ingest.stages.normalize"]
    )
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=become_worker)


# -- the pool that outlives its workers ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class ParsePool(Executor):
    """A process pool whose jobs run under budgets and survive a worker being killed.

    Wraps a `ProcessPoolExecutor`.  Each job runs through `_run_job`, which
    arms the default CPU and memory budgets (a `parse_job` re-arms its own)
    and leaves a marker file while it runs.  When a worker dies (the kernel's
    CPU limit, an abort in a library) the executor breaks and fails every
    pending job; this pool then starts fresh workers and resends the jobs
    that had not started, and runs the ones that had (their markers are
    left) in a worker of their own each, so the culprit fails alone with a
    `ParseError` and the others complete.  See the module docstring.
    """

    def __init__(
        self, pool: ProcessPoolExecutor, workers: int, limits: ParseLimits | None = None
    ) -> None:
        self._pool = pool
        self._workers = workers
        self.limits = limits or ParseLimits()  # for every job; a parse_job brings its own
        self._lock = threading.Lock()
        self._markers = tempfile.mkdtemp(prefix="ingest-parse-")
        self._ids = itertools.count()
        self._closed = False
        self._solo: set[ProcessPoolExecutor] = set()
        self.replaced = 0  # times the workers were replaced after one died

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        outer: Future[T] = Future()
        outer.set_running_or_notify_cancel()  # cannot be cancelled: it may be resent
        self._send(outer, _Call(fn, args, kwargs), 1)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            pools = [self._pool, *self._solo]
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        shutil.rmtree(self._markers, ignore_errors=True)

    # -- internals (callbacks run on the executors' manager threads)

    def _send(self, outer: Future[Any], call: _Call, attempt: int) -> None:
        with self._lock:
            closed, pool = self._closed, self._pool
        if closed:
            outer.set_exception(RuntimeError("cannot schedule new futures after shutdown"))
            return
        job = str(next(self._ids))
        try:
            inner = pool.submit(_run_job, self._markers, job, self.limits, call)
        except BrokenProcessPool:
            self._replace(pool)
            if attempt >= MAX_ATTEMPTS:
                outer.set_exception(errors.ParseError(_DIED))
            else:
                self._send(outer, call, attempt + 1)
            return
        except RuntimeError as e:  # shut down meanwhile
            outer.set_exception(e)
            return
        inner.add_done_callback(functools.partial(self._settle, outer, call, attempt, pool, job))

    def _settle(
        self,
        outer: Future[Any],
        call: _Call,
        attempt: int,
        pool: ProcessPoolExecutor,
        job: str,
        inner: Future[Any],
    ) -> None:
        if inner.cancelled():
            outer.set_exception(CancelledError())
            return
        exc = inner.exception()
        if exc is None:
            outer.set_result(inner.result())
            return
        if not isinstance(exc, BrokenProcessPool):
            outer.set_exception(_tame(exc))
            return
        started = self._started(job)
        self._replace(pool)
        if started:  # running when a worker died: the culprit, or a bystander killed with it
            self._run_alone(outer, call)
        elif attempt >= MAX_ATTEMPTS:
            outer.set_exception(errors.ParseError(_DIED))
        else:
            self._send(outer, call, attempt + 1)

    def _started(self, job: str) -> bool:
        try:
            os.unlink(os.path.join(self._markers, job))
        except OSError:
            return False
        return True

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken or self._closed:
                return
            self._pool = forkserver_executor(self._workers)
            self.replaced += 1
        log.warning("a parse worker died (see the parse errors); started fresh workers")
        with contextlib.suppress(Exception):
            broken.shutdown(wait=False, cancel_futures=True)

    def _run_alone(self, outer: Future[Any], call: _Call) -> None:
        with self._lock:
            if self._closed:
                outer.set_exception(RuntimeError("cannot schedule new futures after shutdown"))
                return
            solo = forkserver_executor(1)
            self._solo.add(solo)
        job = str(next(self._ids))

        def done(inner: Future[Any]) -> None:
            with self._lock:
                self._solo.discard(solo)
            self._started(job)
            with contextlib.suppress(Exception):
                solo.shutdown(wait=False)
            if inner.cancelled():
                outer.set_exception(CancelledError())
                return
            exc = inner.exception()
            if isinstance(exc, BrokenProcessPool):
                outer.set_exception(errors.ParseError(_DIED))
            elif exc is not None:
                outer.set_exception(_tame(exc))
            else:
                outer.set_result(inner.result())

        try:
            inner = solo.submit(_run_job, self._markers, job, self.limits, call)
        except Exception as e:  # could not start a worker at all
            with self._lock:
                self._solo.discard(solo)
            outer.set_exception(e)
            return
        inner.add_done_callback(done)


def _tame(exc: BaseException) -> BaseException:
    """A worker's BaseException (a budget signal that fired at the last moment) as an error."""
    if isinstance(exc, Exception):
        return exc
    return errors.ParseError(f"parsing stopped: {type(exc).__name__} in the worker")


_DIED = (
    "parsing stopped: the worker process reading this document was killed (it ran past "
    "twice its CPU budget inside a library, or crashed); see settings: parse_cpu"
)


# -- inside a worker ------------------------------------------------------------------


class OverBudget(BaseException):
    """Raised by the CPU timer's signal handler; a BaseException so no `except Exception`
    in a library swallows it."""


_in_worker = False
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _run_job(markers: str, job: str, limits: ParseLimits, call: _Call) -> Any:
    """Run one `ParsePool` job in a worker: marker file, budgets, the call."""
    become_worker()
    marker = os.path.join(markers, job)
    with contextlib.suppress(OSError):
        open(marker, "x").close()
    try:
        with budget(limits):
            return call.fn(*call.args, **call.kwargs)
    except OverBudget:
        raise errors.ParseError(
            f"stopped after {limits.cpu_seconds:g}s of CPU (settings: parse_cpu)"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(marker)


def become_worker() -> None:
    """Set a worker process up (the pools' initializer; again, harmlessly, per job)."""
    global _in_worker
    if _in_worker:
        return
    _in_worker = True
    # A library's warning (bs4's "XML parsed as HTML", feedparser's deprecations) is
    # advice for programmers: it must never reach the terminal of whoever runs ingest.
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGPROF, _on_cpu_timer)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker the kernel kills: no core
    if sys.platform.startswith("linux"):
        # Die with the parent: a run killed with SIGKILL must not leave idle workers behind
        # (a fork worker holds its own copy of the job queue's pipe and would wait forever).
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _on_cpu_timer(signum: int, frame: object) -> None:
    raise OverBudget


@contextlib.contextmanager
def budget(limits: ParseLimits) -> Any:
    """Within a `ParsePool` worker: CPU and memory budgets for the duration of the block."""
    if not _in_worker or threading.current_thread() is not threading.main_thread():
        yield
        return
    cpu_before = resource.getrlimit(resource.RLIMIT_CPU)
    as_before = resource.getrlimit(resource.RLIMIT_AS)
    try:
        used = _cpu_used()
        signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)
        _lower(resource.RLIMIT_CPU, int(used + 2 * limits.cpu_seconds) + KERNEL_GRACE)
        vm = _address_space()
        if vm is not None and limits.memory_bytes > 0:
            _lower(resource.RLIMIT_AS, vm + limits.memory_bytes)
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, cpu_before)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, as_before)


def _lower(which: int, soft: int) -> None:
    """Set a soft limit (never above the hard one); ignored where the OS refuses."""
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(which, (soft, hard))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
