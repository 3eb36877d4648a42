"""One session's audio path: decode, resample to Whisper's rate, buffer, detect speech."""

# Whisper's input rate: everything is resampled to it, and every window the workers see is in it.
SAMPLE_RATE_HZ = 16_000
