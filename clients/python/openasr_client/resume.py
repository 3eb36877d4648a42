"""Resume bookkeeping, sans-IO: the audio to re-send and the phrases not to yield twice.

``PROTOCOL.md`` "Checkpoints and resume": a client that lost its connection reconnects with the
last checkpoint as ``resume_checkpoint`` and re-sends the audio after its ``last_audio_ms``. This
object keeps exactly that audio (bounded) and, after a reconnect, filters phrases the server sends
again for audio whose text was already yielded (the window between a phrase and its checkpoint).
No sockets and no awaits: the ``Transcriber`` feeds it, the tests drive it directly.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from typing import Any

from openasr_client.events import Checkpoint, Phrase, join_words

BYTES_PER_SAMPLE = 2  # pcm_s16le mono


class ResumeError(RuntimeError):
    """The session cannot be resumed without losing audio (retention bound exceeded)."""


class ResumeState:
    """The last checkpoint, the PCM sent since its ``last_audio_ms``, and what was yielded."""

    def __init__(self, sample_rate: int, max_retained_ms: int = 120_000) -> None:
        self.sample_rate = sample_rate
        self.max_retained_bytes = self._bytes_for_ms(max_retained_ms)
        self.checkpoint: Mapping[str, Any] | None = None
        self.checkpoint_ms = 0
        self.sent_bytes = 0  # bytes of the stream handed to the socket so far
        self._chunks: deque[bytes] = deque()
        self._base = 0  # stream position of the first retained byte
        self._retained = 0
        self.yielded_until_ms = -1  # end of the newest phrase yielded
        self._suppressing = False

    # --- audio ---

    def _bytes_for_ms(self, ms: int) -> int:
        # Whole samples only: the server's timeline counts samples, not bytes.
        return ms * self.sample_rate // 1000 * BYTES_PER_SAMPLE

    @property
    def sent_ms(self) -> int:
        """Milliseconds of audio handed to the socket (including re-sends: stream position)."""
        return self.sent_bytes // BYTES_PER_SAMPLE * 1000 // self.sample_rate

    @property
    def unconfirmed_ms(self) -> int:
        """Audio sent but not yet covered by a checkpoint: what the server still holds."""
        return max(0, self.sent_ms - self.checkpoint_ms)

    def record_sent(self, data: bytes) -> None:
        """Called just before ``data`` goes to the socket; retains it for a possible resume."""
        if not data:
            return
        self._chunks.append(bytes(data))
        self.sent_bytes += len(data)
        self._retained += len(data)
        while self._retained > self.max_retained_bytes and self._chunks:
            # Bounded memory: the oldest audio goes first; resume then fails loudly (replay()).
            dropped = self._chunks.popleft()
            self._retained -= len(dropped)
            self._base += len(dropped)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Called for every ``speech.checkpoint``: audio before ``last_audio_ms`` is no longer
        needed, and phrases yielded so far are part of the server's transcript."""
        self.checkpoint = checkpoint.raw
        self.checkpoint_ms = max(self.checkpoint_ms, checkpoint.last_audio_ms)
        keep_from = self._bytes_for_ms(self.checkpoint_ms)
        while self._chunks and self._base + len(self._chunks[0]) <= keep_from:
            dropped = self._chunks.popleft()
            self._retained -= len(dropped)
            self._base += len(dropped)

    def replay(self) -> bytes:
        """The audio to re-send after a resume: everything from the checkpoint's position."""
        start = self._bytes_for_ms(self.checkpoint_ms) if self.checkpoint is not None else 0
        if start < self._base:
            lost_ms = (self._base - start) // BYTES_PER_SAMPLE * 1000 // self.sample_rate
            raise ResumeError(
                f"cannot resume without a gap: {lost_ms} ms of audio after the last checkpoint "
                "exceeded the retention bound (raise resume_buffer_ms)"
            )
        data = b"".join(self._chunks)
        return data[start - self._base :]

    def on_reconnected(self) -> None:
        """Called once a resumed (or restarted) session is acknowledged, before the replay."""
        self._suppressing = self.yielded_until_ms >= 0
        # The socket position restarts at the replay point; re-sent bytes are recorded again.
        start = self._bytes_for_ms(self.checkpoint_ms) if self.checkpoint is not None else 0
        self._chunks.clear()
        self._retained = 0
        self._base = start
        self.sent_bytes = start

    # --- phrases ---

    def filter_phrase(self, phrase: Phrase) -> Phrase | None:
        """The part of ``phrase`` not yet yielded (``None`` if nothing is new); after a resume
        the server may re-send the text of a window whose checkpoint never arrived."""
        if self._suppressing:
            phrase = self._drop_yielded(phrase)
            if phrase is None:
                return None
            self._suppressing = False
        self.yielded_until_ms = max(self.yielded_until_ms, phrase.end)
        return phrase

    def _drop_yielded(self, phrase: Phrase) -> Phrase | None:
        limit = self.yielded_until_ms
        if not phrase.words:
            # A seed server sends no word times: the phrase is new only if it ends later.
            return phrase if phrase.offset + phrase.duration // 2 > limit else None
        # Word times jitter between two transcriptions of the same audio; a word's centre is
        # steadier than its edges.
        kept = tuple(w for w in phrase.words if w.offset + w.duration // 2 > limit)
        if not kept:
            return None
        if len(kept) == len(phrase.words):
            return phrase
        start, end = kept[0].offset, kept[-1].end
        return dataclasses.replace(
            phrase, text=join_words(kept), offset=start, duration=end - start, words=kept
        )
