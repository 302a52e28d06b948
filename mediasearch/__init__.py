"""mediasearch: local, offline search over your own pictures and sounds."""

import os

# onnxruntime's Linux build starts a telemetry uploader that looks up an outside
# host unless this is set before it is imported; mediasearch never goes online
# once the model is on disk.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
