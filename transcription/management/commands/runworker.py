"""``manage.py runworker asr.inference``: channels' runworker with OpenASR's bounded worker.

Same command line as channels' own; only the worker class differs (see ``InferenceWorker``).
"""

from channels.management.commands.runworker import Command as ChannelsRunworker

from transcription.worker import InferenceWorker


class Command(ChannelsRunworker):
    worker_class = InferenceWorker
