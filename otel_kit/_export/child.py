"""Export spans from a child process, so OTLP encoding and sending leave the service's GIL.

The service's batch processor keeps its bounded queue, drop counting and schedule; this
exporter hands its batches of rows over a pipe to `python -m otel_kit._export.child`, which
encodes and sends them with the stock exporter's transport. A child that dies is replaced,
and the batches it had not answered for go to the replacement; until it has started, the
in-process exporter (auto) or a bounded hold (`true`) takes them. When the child pays
(a second core, 1,000 spans a second) and why: docs/design/span-export.md.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_kit._export.rows import SpanCatalog, export_batch

Rows = Sequence[tuple]  # one batch of SpanCatalog rows
_log = logging.getLogger("otel_kit")
_START_FAILURES_BEFORE_FALLBACK = 3
# In-process encoding and sending take ~13 us of the service's GIL a span here: 1.3% of it
# at 1,000 spans a second; above that, taking it off the GIL is worth a second interpreter.
AUTO_MIN_RATE = 1000.0
_CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
_RATE_WINDOW_S = 2.0


def usable_cores(cpu_max: str = _CGROUP_CPU_MAX) -> float:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 quota (a container's limit)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; macOS has none
    cores = float(len(affinity(0)) if affinity else os.cpu_count() or 1)
    try:
        with open(cpu_max) as limit:
            quota, period = limit.read().split()[:2]
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else min(cores, int(quota) / int(period))


class ChildState(enum.Enum):
    """Where a ProcessSpanExporter's batches go.

    IN_PROCESS -> STARTING once `min_rate` is reached (auto); STARTING -> RUNNING when the
    child answers its first flush; RUNNING -> STARTING when it dies (restarted for the next
    batch, after a back-off if it died starting); STARTING -> GAVE_UP after three failed
    starts; any -> SHUT_DOWN.
    """

    IN_PROCESS = "in-process"  # auto, below min_rate: the in-process exporter, no child
    STARTING = "starting"  # a child starting (or due): rows held, or the in-process exporter (auto)
    RUNNING = "running"  # the child has answered: batches go down its pipe
    GAVE_UP = "gave up"  # no child could start: the in-process exporter, for good
    SHUT_DOWN = "shut down"


def _export_each(exporter: SpanExporter, catalog: SpanCatalog, batches: list[Rows]) -> SpanExportResult:
    results = [export_batch(exporter, catalog.batch(rows)) for rows in batches]
    return SpanExportResult.FAILURE if SpanExportResult.FAILURE in results else SpanExportResult.SUCCESS


# ---- the service's side -----------------------------------------------------------------


class ProcessSpanExporter:
    """Hands each batch of rows to a child process that exports it over OTLP.

    `protocol` and `endpoint` are what the child's exporter gets (`endpoint` None: it reads
    OTEL_EXPORTER_OTLP_* itself). `in_process` builds the exporter used when no child can
    be started, and, with `min_rate` set, until the service exports that many spans a second
    and then whenever a child is starting.
    """

    def __init__(
        self,
        protocol: str,
        endpoint: str | None,
        in_process: Callable[[], SpanExporter],
        min_rate: float | None = None,
    ) -> None:
        self._argv = [sys.executable, "-m", __name__, protocol]
        self._endpoint = endpoint
        self._in_process = in_process
        self.catalog = SpanCatalog()
        self._min_rate = min_rate  # None: the child from the start
        self._window_start, self._window_spans = time.monotonic(), 0
        # In-process: while the rate is below min_rate, and later while a child starts.
        self._local: SpanExporter | None = None
        self._fallback: SpanExporter | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._answered = False  # the running child has answered the flush sent at its start
        # Batches waiting for a child that is starting: sent one by one, never merged, as a
        # message past the collector's limit (4 MiB by default) would be refused whole.
        self._held: list[Rows] = []
        self.max_held = 2048  # spans; the batch processor sets its queue size
        # Batches written to the child that it has not answered yet, by message number: if it
        # dies they go to its replacement (a batch it was sending may then arrive twice).
        self._unanswered: collections.deque[tuple[int, Rows]] = collections.deque()
        self._lost = 0  # spans no child took: logged when the next one starts
        self._start_failures = 0
        # A child that dies before it has started is not restarted more often than this.
        self._restart_backoff_s = 5.0
        self._next_start = 0.0
        self._last_number = 0
        self._shutdown = False
        if hasattr(os, "register_at_fork"):
            forget = weakref.WeakMethod(self._forget_parents_child)  # the hook must not keep us alive
            os.register_at_fork(after_in_child=lambda: (method := forget()) and method())

    def start(self) -> None:
        """Make ready to export now rather than at the first batch.

        The child's start-up (an interpreter importing gRPC and the exporter: ~0.5 s of CPU)
        then overlaps the service's own, not its first requests; a child that cannot start is
        retried at the first batch. With `min_rate` set the child waits for that rate, and the
        in-process exporter is built here: at the first batch under load, its imports ran on
        the batch worker, which waits for the GIL after every file read, and took 2.1 s
        (0.24 s alone) while the queue overflowed: 6,940 spans of 9,500 dropped.
        """
        with self._lock:
            if self._fallback is not None or self._shutdown:
                return
            if self._min_rate is None:
                self._running_child()
            elif self._local is None:
                self._local = self._in_process()

    @property
    def state(self) -> ChildState:
        if self._shutdown:
            return ChildState.SHUT_DOWN
        if self._fallback is not None:
            return ChildState.GAVE_UP
        if self._min_rate is not None:
            return ChildState.IN_PROCESS
        proc = self._proc
        if proc is not None and proc.poll() is None and self._answered:
            return ChildState.RUNNING
        return ChildState.STARTING

    def export(self, rows: Rows) -> SpanExportResult:
        """Send rows made by `catalog.row`."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        batches = [rows]
        with self._lock:
            state = self._advance(len(rows))
            if state is ChildState.IN_PROCESS:
                in_process = self._local  # exported outside the lock: it may retry for seconds
            elif state is ChildState.RUNNING:
                unsent = self._send_batches(self._proc, [*self._take_held(), rows])  # type: ignore[arg-type]
                if not unsent:
                    return SpanExportResult.SUCCESS
                # It died before reading them; the next batch starts its replacement.
                if self._local is None:
                    return self._hold(None, unsent)
                in_process, batches = self._local, unsent
            elif state is ChildState.GAVE_UP:
                in_process = self._fallback
                batches = [*self._take_held(), rows]  # held for a child that then could not start
            elif self._local is not None:  # STARTING, auto: its exporter kept for this
                in_process = self._local
                batches = [*self._take_held(), rows]  # those a dead child left unsent first
            else:  # STARTING, `true`: held for the child
                return self._hold(self._proc, [rows])
        return _export_each(in_process, self.catalog, batches)  # type: ignore[arg-type]

    def _advance(self, spans: int) -> ChildState:
        """Make the transitions a batch of `spans` brings (the rate, a child's start or death)."""
        if self._min_rate is not None and not self._rate_reached(spans):
            if self._local is None:
                self._local = self._in_process()
            return ChildState.IN_PROCESS
        if self._fallback is None:
            proc = self._running_child()  # starts one if none runs; may give up (GAVE_UP)
            if proc is not None:
                self._started(proc)  # STARTING -> RUNNING once it has answered
        return self.state

    def _rate_reached(self, spans: int) -> bool:
        """Count spans per window; once a window reaches min_rate, move to the child for good."""
        now = time.monotonic()
        if now - self._window_start > _RATE_WINDOW_S:
            self._window_start, self._window_spans = now, 0
        self._window_spans += spans
        if self._window_spans < self._min_rate * _RATE_WINDOW_S:  # type: ignore[operator]
            return False
        _log.info(
            "otel_kit: exporting over %.0f spans a second: moving span export to a child process",
            self._min_rate,
        )
        self._min_rate = None
        return True

    def _started(self, proc: subprocess.Popen) -> bool:
        """Whether the child has answered the flush sent when it was started: its start-up
        (an interpreter importing gRPC: ~0.5 s) is over.

        Until then a batch written to it would stall the batch worker on a full pipe while the
        queue filled: at 7,000 spans a second that dropped 192 spans of 28,000 with the
        collector up. So the in-process exporter carries on meanwhile, or rows are held.
        Also takes the replies written so far. A child that died starting never answers:
        the next batch finds it gone.
        """
        if self._read_replies(proc):
            self._answered = True
        return self._answered

    def _answer(self, number: int) -> None:
        """The child has handled every message up to `number` (it handles them in order)."""
        unanswered = self._unanswered
        while unanswered and unanswered[0][0] <= number:
            unanswered.popleft()

    def _read_replies(self, proc: subprocess.Popen) -> bool:
        """Take the replies the child has written so far, without waiting for more; whether any."""
        read = False
        with contextlib.suppress(EOFError, pickle.UnpicklingError, OSError, ValueError):
            while select.select([proc.stdout], [], [], 0)[0]:
                self._answer(pickle.load(proc.stdout))
                read = True
        return read

    def _hold(self, proc: subprocess.Popen | None, batches: list[Rows]) -> SpanExportResult:
        """Keep batches for a child that is starting (a replacement, or `true` mode's first).

        At most `max_held` spans, as many as the batch queue holds; past that they wait on the
        child's pipe, the queue fills behind them, and its drops are counted there.
        """
        held = sum(map(len, self._held))
        if held + sum(map(len, batches)) <= self.max_held:
            self._held.extend(batches)
            return SpanExportResult.SUCCESS
        if proc is not None:
            batches = self._send_batches(proc, [*self._take_held(), *batches])
        # No child until the restart back-off is over, or it died starting: logged at the next.
        self._lost += sum(map(len, batches))
        return SpanExportResult.FAILURE if batches else SpanExportResult.SUCCESS

    def _send_batches(self, proc: subprocess.Popen, batches: list[Rows]) -> list[Rows]:
        """Write each batch to the child's pipe, waiting for it to read them; those not written."""
        for sent, rows in enumerate(batches):
            number = self._next_number()
            if self._send(proc, ("spans", number, *self.catalog.batch(rows))) is not SpanExportResult.SUCCESS:
                return batches[sent:]
            self._unanswered.append((number, rows))
        return []

    def _take_held(self) -> list[Rows]:
        held, self._held = self._held, []
        return held

    def _next_number(self) -> int:
        """The next message's number: the child replies with it once it has handled it."""
        self._last_number += 1
        return self._last_number

    def _await_answer(self, proc: subprocess.Popen, wanted: int, deadline: float) -> bool:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                return False
            try:
                number = pickle.load(proc.stdout)
            except (EOFError, pickle.UnpicklingError, OSError):
                return False  # the child died before exporting all of it
            self._answer(number)
            if number == wanted:
                return True
        return False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """True once the child has exported everything handed to it before this call."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if not self._release_held():
                return False
            if self._fallback is not None:
                return self._fallback.force_flush(timeout_millis)
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return True  # nothing handed over is pending
            number = self._next_number()
            if self._send(proc, ("flush", number)) is not SpanExportResult.SUCCESS:
                return False
            flushed = self._await_answer(proc, number, deadline)
            self._answered = self._answered or flushed
            return flushed

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        deadline = time.monotonic() + timeout_millis / 1000
        self._shutdown = True
        if self._local is not None:
            self._local.shutdown()
        # A writer stuck on a wedged child holds the lock; killing the child frees it.
        if not self._lock.acquire(timeout=min(5.0, timeout_millis / 1000)):
            if self._proc is not None:
                self._proc.kill()
            self._lock.acquire()
        try:
            # Past the deadline no child is started for held rows: it would outlive the service.
            unreleased = time.monotonic() >= deadline or not self._release_held()
            if unreleased and (held := sum(map(len, self._held))):
                _log.warning("otel_kit: no span export process took %d spans at shutdown", held)
            if self._fallback is not None:
                self._fallback.shutdown()
            proc, self._proc = self._proc, None
            if proc is None:
                return
            _close(proc.stdin)  # end of input: the child exports what it has and exits
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.warning("otel_kit: the span export process did not finish in time; stopping it")
                proc.kill()
                proc.wait()
            _close(proc.stdout)
        finally:
            self._lock.release()

    def _release_held(self) -> bool:
        """Hand held batches over, waiting for the child's pipe (flush, shutdown); False if none can start."""
        dead = self._proc is not None and self._proc.poll() is not None
        if not self._held and not (dead and self._unanswered):
            return True
        self._next_start = 0.0  # one more try, whatever the restart back-off
        proc = self._running_child()
        if proc is not None:
            unsent = self._send_batches(proc, self._take_held())
            self._lost += sum(map(len, unsent))
            return not unsent
        if self._fallback is not None:
            return _export_each(self._fallback, self.catalog, self._take_held()) is SpanExportResult.SUCCESS
        return False

    def _running_child(self) -> subprocess.Popen | None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            self._read_replies(proc)  # what it answered before it died
            unsent = [rows for _, rows in self._unanswered]
            self._unanswered.clear()
            self._held[:0] = unsent  # before anything held since: the order they were made
            _log.warning(
                "otel_kit: the span export process exited (status %s); starting a new one", proc.returncode
            )
            if unsent:
                _log.warning(
                    "otel_kit: %d spans the span export process had not answered for go to the new one "
                    "(any it was sending may arrive twice)",
                    sum(map(len, unsent)),
                )
            _close(proc.stdin)
            _close(proc.stdout)
            self._proc = None
            if self._answered:  # it had started and worked: replace it now, whenever it started
                self._next_start = 0.0
        if time.monotonic() < self._next_start:
            return None
        try:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_child_env(self._endpoint),
                bufsize=0,
            )
            self._answered = False  # until it answers this flush (see _started)
            self._send(self._proc, ("flush", self._next_number()))
            self._start_failures = 0
            if self._lost:
                _log.warning(
                    "otel_kit: %d spans lost while the span export process was restarting", self._lost
                )
                self._lost = 0
        except OSError as exc:
            self._start_failures += 1
            self._next_start = time.monotonic() + self._restart_backoff_s
            if self._start_failures >= _START_FAILURES_BEFORE_FALLBACK:
                _log.warning(
                    "otel_kit: cannot start the span export process (%s); exporting in-process instead. "
                    "Set OTEL_KIT_EXPORT_PROCESS=false to skip trying.",
                    exc,
                )
                self._fallback = self._in_process()
            return None
        self._next_start = time.monotonic() + self._restart_backoff_s
        return self._proc

    def _send(self, proc: subprocess.Popen, message: tuple) -> SpanExportResult:
        try:
            _write_all(proc.stdin, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ValueError, OSError):  # the child died; the next batch restarts it
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _forget_parents_child(self) -> None:
        """In a forked worker: the child belongs to the parent; this worker starts its own.

        Our copy of the parent's pipe is closed, or the parent's child would never see its
        input end when the parent shuts down.
        """
        self._lock = threading.Lock()
        proc, self._proc = self._proc, None
        if proc is not None:
            _close(proc.stdin)
            _close(proc.stdout)
        self._next_start = 0.0
        self._held = []  # the parent's to export
        self._unanswered.clear()
        self._local = None  # the parent's in-process exporter and its channel stay the parent's


def _child_env(endpoint: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if endpoint:  # by environment, not argv: `ps` shows argv to every user of the host
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint
    # Under opentelemetry-instrument, its sitecustomize would set up telemetry in the child too.
    paths = env.get("PYTHONPATH", "").split(os.pathsep)
    kept = [p for p in paths if p and not p.rstrip("/").endswith("auto_instrumentation")]
    env["PYTHONPATH"] = os.pathsep.join(kept)
    env["OTEL_SDK_DISABLED"] = "true"
    return env


def _write_all(pipe: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[pipe.write(view) :]


def _close(pipe: Any) -> None:
    if pipe is not None:
        with contextlib.suppress(OSError):
            pipe.close()


# ---- the child's side -------------------------------------------------------------------


def _child_main(argv: list[str]) -> None:
    # The child lives exactly as long as its input: a Ctrl-C or SIGTERM to the whole group
    # must not kill it before the service has handed over its last spans.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(format="otel_kit span export process: %(levelname)s %(name)s: %(message)s")
    from otel_kit._export.encoder import row_exporter
    from otel_kit._export.sdk_warnings import quiet_sdk_warnings

    quiet_sdk_warnings()
    exporter = row_exporter(argv[0])  # endpoint, headers...: OTEL_EXPORTER_OTLP_*
    source, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            message = pickle.load(source)
        except (EOFError, pickle.UnpicklingError):
            break  # input closed, or the service died mid-batch: export nothing half-read
        if message[0] == "spans":
            try:
                exporter.export_rows(message[2:])
            except Exception:  # one bad batch costs that batch, not the process
                logging.getLogger("otel_kit").exception("a batch of spans could not be exported")
        # Every message is answered with its number once handled: a batch sent (or given up
        # on after the exporter's retries), or a flush of everything before it.
        replies.write(pickle.dumps(message[1]))
        replies.flush()
    exporter.shutdown()


if __name__ == "__main__":
    _child_main(sys.argv[1:])
