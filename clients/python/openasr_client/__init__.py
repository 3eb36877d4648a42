"""OpenASR streaming speech-to-text client: ``Transcriber`` (async), ``transcribe_file`` (sync)
and the ``openasr`` command line."""

from openasr_client.events import (
    Backpressure,
    Checkpoint,
    ConfigAck,
    EndOfStream,
    Error,
    Event,
    Hypothesis,
    Phrase,
    ProtocolError,
    Unknown,
    Word,
    parse_event,
)

__version__ = "0.1.0"

from openasr_client.audio import AudioError, AudioSource, open_audio  # noqa: E402
from openasr_client.files import atranscribe_file, transcribe_file  # noqa: E402
from openasr_client.resume import ResumeError, ResumeState  # noqa: E402
from openasr_client.transcriber import (  # noqa: E402
    AuthenticationError,
    Transcriber,
    TranscriberError,
    stream_audio,
)
from openasr_client.transcript import Transcript, render  # noqa: E402

__all__ = [
    "AudioError",
    "AudioSource",
    "AuthenticationError",
    "Backpressure",
    "Checkpoint",
    "ConfigAck",
    "EndOfStream",
    "Error",
    "Event",
    "Hypothesis",
    "Phrase",
    "ProtocolError",
    "ResumeError",
    "ResumeState",
    "Transcriber",
    "TranscriberError",
    "Transcript",
    "Unknown",
    "Word",
    "__version__",
    "atranscribe_file",
    "open_audio",
    "parse_event",
    "render",
    "stream_audio",
    "transcribe_file",
]
