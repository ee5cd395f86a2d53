"""The decode engine: one per decoder process, for every stream. Worker threads take work pieces from one queue.

Order: the request that has had the least worker time so far goes first (least attained service), oldest first
among equals. A new small request therefore starts on the next free worker, however much a heavy request still has
queued: it waits at most for the pieces running now, and each piece is bounded (service.decoder.engine.work).
Requests of equal weight alternate, so streams share the workers evenly.

Micro-batches: a decode piece takes with it the waiting decode pieces of other requests on the same model (and,
for the torch backend, the same image), up to `max_batch` prompts, into one mask decoder call.

Shared masks: a worker that decoded a piece whose masks fit in one piece hands a share of them to the workers that
have nothing to do, so a lone request's masks are upscaled and encoded on every worker's core.

Cancellation: when a stream is cancelled or its deadline passes, its request's queued pieces are dropped at once
(`sam_decoder_pieces_cancelled`); a running piece finishes and its results are discarded.

Working memory: at most `workers` pieces run at once, each bounded by `piece_pixels` (or one mask); what a request
keeps between pieces is its low-res logits and its encoded masks, bounded by the answer-size limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from service.decoder.engine.work import (
    DecodePiece,
    MaskIndex,
    MaskPiece,
    Piece,
    SegmentWork,
    decode_pieces,
    encode_masks,
    mask_groups,
    record_masks,
    split_masks,
)
from service.decoder.metrics import (
    BATCH_SIZE,
    PIECE_SECONDS,
    PIECES_CANCELLED,
    PROMPTS,
    QUEUE_DEPTH,
    QUEUE_WAIT_SECONDS,
    REQUEST_SECONDS,
)
from service.errors import Internal, ServiceError, Unavailable

log = logging.getLogger(__name__)


class DecodeEngine:
    def __init__(self, workers: int, max_batch: int, piece_pixels: int) -> None:
        if workers < 1 or max_batch < 1 or piece_pixels < 1:
            raise ValueError("the decode engine needs at least one worker, a batch of one and one pixel a piece")
        self.workers = workers
        self.max_batch = max_batch
        self.piece_pixels = piece_pixels
        self._lock = threading.Condition()
        self._queues: dict[SegmentWork, deque[Piece]] = {}  # requests with queued pieces, in arrival order
        self._settle: dict[SegmentWork, Callable[[], None]] = {}
        self._queued = 0
        self._running = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"decode-{number}", daemon=True) for number in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, work: SegmentWork) -> None:
        """Do `work` (its masks end up in work.masks); raise its failure. If the caller is cancelled (the stream
        ended, its deadline passed), the request's queued pieces are dropped."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def settle() -> None:
            try:
                loop.call_soon_threadsafe(finish)
            except RuntimeError:  # the stream's event loop has closed: nobody waits for this answer
                log.debug("a decode finished after its event loop closed")

        started = time.perf_counter()
        self._submit(work, settle)
        try:
            await done
        except asyncio.CancelledError:
            self.cancel(work)
            raise
        REQUEST_SECONDS.observe(time.perf_counter() - started)
        if work.failure is not None:
            raise work.failure

    def cancel(self, work: SegmentWork) -> None:
        with self._lock:
            work.cancelled = True
            self._drop_queued(work)

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Stop the workers; requests still queued fail UNAVAILABLE."""
        with self._lock:
            self._stopping = True
            for work in list(self._queues):
                work.failure = work.failure or Unavailable("the decoder is shutting down; send the request again")
                self._drop_queued(work)
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout_seconds)

    @property
    def idle(self) -> bool:
        """No piece queued or running."""
        with self._lock:
            return self._queued == 0 and self._running == 0

    def _submit(self, work: SegmentWork, settle: Callable[[], None]) -> None:
        with self._lock:
            if self._stopping:
                work.failure = Unavailable("the decoder is shutting down; send the request again")
                settle()
                return
            self._settle[work] = settle
            self._enqueue(work, decode_pieces(work, self.max_batch))
            self._lock.notify(min(self._queued, self.workers))

    def _enqueue(self, work: SegmentWork, pieces: list[DecodePiece] | list[MaskPiece]) -> None:
        self._queues.setdefault(work, deque()).extend(pieces)
        work.outstanding += len(pieces)
        self._queued += len(pieces)
        QUEUE_DEPTH.set(self._queued)

    def _drop_queued(self, work: SegmentWork) -> None:
        pieces = self._queues.pop(work, None)
        if pieces:
            PIECES_CANCELLED.inc(len(pieces))
            work.outstanding -= len(pieces)
            self._queued -= len(pieces)
            QUEUE_DEPTH.set(self._queued)
        self._settle_if_finished(work)

    def _settle_if_finished(self, work: SegmentWork) -> None:
        if work.finished:
            settle = self._settle.pop(work, None)
            if settle is not None:
                settle()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queued and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                pieces = self._take()
                self._running += 1
                alone = self._running == 1
            started = time.perf_counter()
            for piece in pieces:
                QUEUE_WAIT_SECONDS.observe(started - piece.queued_at)
            try:
                self._run(pieces, alone)
            except Exception as error:  # noqa: BLE001 - a worker must survive any one request's failure
                self._fail(pieces, error)
            elapsed = time.perf_counter() - started
            PIECE_SECONDS.labels(pieces[0].kind).observe(elapsed)
            with self._lock:
                self._running -= 1
                for piece in pieces:
                    piece.work.attained_seconds += elapsed / len(pieces)
                    piece.work.outstanding -= 1
                    self._settle_if_finished(piece.work)

    def _take(self) -> list[Piece]:
        """The next piece of the least served request, with other requests' decode pieces batched into it."""
        order = sorted(self._queues, key=lambda work: (work.attained_seconds, work.arrived))
        first = order[0]
        piece = self._pop(first)
        if not isinstance(piece, DecodePiece):
            return [piece]
        batch: list[Piece] = [piece]
        prompts = len(piece.objects)
        for work in order[1:]:
            head = self._queues[work][0]  # `order` holds requests with queued pieces; each is popped once at most
            if not isinstance(head, DecodePiece) or prompts + len(head.objects) > self.max_batch:
                continue
            if not _batchable(piece.work, work):
                continue
            batch.append(self._pop(work))
            prompts += len(head.objects)
        return batch

    def _pop(self, work: SegmentWork) -> Piece:
        queue = self._queues[work]
        piece = queue.popleft()
        if not queue:
            del self._queues[work]
        self._queued -= 1
        QUEUE_DEPTH.set(self._queued)
        return piece

    def _run(self, pieces: list[Piece], alone: bool) -> None:
        head = pieces[0]
        if isinstance(head, MaskPiece):
            self._encode_and_record(head.work, head.masks)
            return
        decodes = [piece for piece in pieces if isinstance(piece, DecodePiece)]
        items = [piece.work.decode_item(index) for piece in decodes for index in piece.objects]
        answers = head.work.backend.decode(items, head.work.query.multimask_output, alone)
        BATCH_SIZE.observe(len(items))
        PROMPTS.inc(len(items))
        answer_iterator = iter(answers)
        for decode in decodes:
            for index in decode.objects:
                decode.work.low_res[index] = next(answer_iterator)
        for decode in decodes:
            self._after_decode(decode)

    def _after_decode(self, piece: DecodePiece) -> None:
        """Encode the piece's masks now when they fit in one piece, else queue them as mask pieces. Workers with
        nothing to do take a share of even one piece's masks: a lone request's masks are encoded in parallel."""
        work = piece.work
        groups = mask_groups(work, piece.objects, self.piece_pixels)
        if len(groups) == 1:
            with self._lock:
                idle = self.workers - self._running - self._queued
            shares = split_masks(groups[0], 1 + max(idle, 0))
            if len(shares) > 1:
                self._queue_masks(work, shares[1:])
            self._encode_and_record(work, shares[0])
            return
        self._queue_masks(work, groups)

    def _queue_masks(self, work: SegmentWork, groups: Sequence[tuple[MaskIndex, ...]]) -> None:
        with self._lock:
            if not work.cancelled and work.failure is None:
                self._enqueue(work, [MaskPiece(work, group) for group in groups])
                self._lock.notify(min(self._queued, self.workers))

    def _encode_and_record(self, work: SegmentWork, masks: tuple[MaskIndex, ...]) -> None:
        """Encode `masks` of a request still wanted and keep them; a request the answer-size bound fails drops its
        queued pieces."""
        if work.cancelled or work.failure is not None:
            return
        encoded = encode_masks(work, masks)
        with self._lock:
            record_masks(work, encoded)
            if work.failure is not None:
                self._drop_queued(work)

    def _fail(self, pieces: list[Piece], error: Exception) -> None:
        failure = error if isinstance(error, ServiceError) else Internal(f"decoding failed: {error!r}")
        if not isinstance(error, ServiceError):
            log.exception("a decode piece failed", exc_info=error)
        with self._lock:
            for piece in pieces:
                piece.work.failure = piece.work.failure or failure
                self._drop_queued(piece.work)


def _batchable(first: SegmentWork, other: SegmentWork) -> bool:
    """Prompts of `other` may join `first`'s mask decoder call: same model and output count (and, for the torch
    backend, which decodes one image per call, the same image)."""
    if other.backend is not first.backend or other.query.multimask_output != first.query.multimask_output:
        return False
    return first.backend.name != "torch" or other.embedding_key == first.embedding_key
