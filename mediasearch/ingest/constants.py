"""How a pass is paced: batch sizes, decoder threads, and which failures are tried again."""

import os

from mediasearch import media

BATCH_FILES = 16  # files per committed transaction at most
READ_BATCH = 8  # pictures whose text is committed together
DECODERS = min(4, os.cpu_count() or 1)
TRANSIENT = "cannot read file"  # failures that may pass (permissions, a flaky disk): retried every pass
RETRIED = (TRANSIENT, media.OUT_OF_MEMORY)  # ... and a file that found too little memory for it
