"""Tests for transcription/inference/messages.py: the worker contract round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from transcription.inference.messages import (
    BATCH_CHANNEL,
    INFERENCE_CHANNEL,
    JobAccepted,
    JobResult,
    MessageError,
    TranscribeJob,
    inference_channel,
    max_tokens_for,
)
from transcription.inference.types import Segment, Word


def test_a_job_round_trips_through_its_message() -> None:
    """to_message/from_message keep every field; audio within int16 precision."""
    samples = np.linspace(-1, 1, 1600, dtype=np.float32)
    job = TranscribeJob("r", "s", 4, samples, "de", "hi", 5, 2, 314, 1, 12.5)
    back = TranscribeJob.from_message(job.to_message())
    assert (back.reply_channel, back.window_index, back.language, back.attempt) == ("r", 4, "de", 1)
    assert np.allclose(back.samples, samples, atol=1 / 16000)


def test_translate_travels_with_the_job_and_an_older_sender_means_transcribe() -> None:
    """translate round-trips and reaches the request; a message without it is transcribed."""
    job = TranscribeJob("r", "s", 0, np.zeros(16, dtype=np.float32), "de", translate=True)
    back = TranscribeJob.from_message(job.to_message())
    assert back.translate and back.request().translate
    message = job.to_message()
    del message["translate"]
    assert not TranscribeJob.from_message(message).translate


def test_the_job_is_the_one_place_a_request_is_made() -> None:
    """request() carries the job's settings and the token bound for its length."""
    job = TranscribeJob("r", "s", 0, np.zeros(32000, dtype=np.float32), beam_size=5)
    request = job.request()
    assert request.beam_size == 5 and request.max_tokens == max_tokens_for(2.0)


@pytest.mark.parametrize("field", ["reply_channel", "window_index", "audio", "attempt"])
def test_a_job_missing_a_field_is_a_message_error(field: str) -> None:
    """A malformed job names the field instead of failing somewhere in the worker."""
    message = TranscribeJob("r", "s", 0, np.zeros(16, dtype=np.float32)).to_message()
    del message[field]
    with pytest.raises(MessageError, match=field):
        TranscribeJob.from_message(message)


def test_a_result_round_trips_with_its_words() -> None:
    """Segments and words survive the channel layer."""
    seg = Segment("hi there", 0, 900, (Word("hi", 0, 400, 0.9), Word("there", 450, 900, 0.8)))
    result = JobResult("s", 2, 0, ok=True, segments=(seg,), inference_s=0.5, audio_s=5.0)
    assert JobResult.from_message(result.to_message()) == result
    assert JobAccepted.from_message(JobAccepted("s", 2, 1).to_message()) == JobAccepted("s", 2, 1)


def test_a_job_carries_its_priority_and_the_channel_it_goes_to() -> None:
    """A file chunk is a batch job on the batch channel; a window is live by default."""
    samples = np.zeros(16, dtype=np.float32)
    live = TranscribeJob("r", "s", 0, samples)
    batch = TranscribeJob("r", "s", 0, samples, priority="batch")
    assert (live.priority, live.channel) == ("live", INFERENCE_CHANNEL)
    assert TranscribeJob.from_message(batch.to_message()).priority == "batch"
    assert batch.channel == BATCH_CHANNEL == inference_channel("batch")
    assert BATCH_CHANNEL != INFERENCE_CHANNEL


def test_a_job_without_a_priority_is_live_and_an_unknown_one_is_refused() -> None:
    """A sender from before the field existed sends live jobs; a bad value names the field."""
    message = TranscribeJob("r", "s", 0, np.zeros(16, dtype=np.float32)).to_message()
    del message["priority"]
    assert TranscribeJob.from_message(message).priority == "live"
    message["priority"] = "urgent"
    with pytest.raises(MessageError, match="priority"):
        TranscribeJob.from_message(message)


def test_each_model_has_its_own_live_and_batch_channels() -> None:
    """inference_channel builds asr.inference.<model id>[.batch], safe for channels' names."""
    assert inference_channel("live", "whisper-base") == "asr.inference.whisper-base"
    assert inference_channel("batch", "whisper-tiny.en") == "asr.inference.whisper-tiny.en.batch"
    assert inference_channel("live", "whisper-my model") == "asr.inference.whisper-my_model"
    job = TranscribeJob("r", "s", 0, np.zeros(16, np.float32), model_id="whisper-base")
    assert job.channel == "asr.inference.whisper-base"
    assert TranscribeJob.from_message(job.to_message()).model_id == "whisper-base"
