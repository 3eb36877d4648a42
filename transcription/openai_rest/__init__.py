"""OpenAI's transcriptions REST API on OpenASR's sessions: ``POST /v1/audio/transcriptions`` and
``GET /v1/models`` (README "OpenAI transcriptions API").

One concern per module: ``params`` parses the form, ``audiofile`` decodes the upload,
``filejob`` drives a ``Session`` over the decoded audio on the batch inference channel,
``formats`` writes json / text / srt / vtt / verbose_json and the stream events, ``errors`` the
error shape, ``views`` the thin HTTP edge (auth, admission, metrics).
"""
