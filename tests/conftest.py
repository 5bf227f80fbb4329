"""Test-wide settings: headless Qt, no network, a small CPU thread count."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the project may reach a network; these make any attempt fail fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")
