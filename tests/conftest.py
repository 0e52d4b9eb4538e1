"""Settings shared by the whole suite.

Property-based tests explore new examples on every local run; under CI (`MILLCHAIN_CI=1`, set by
`.ci/run`) they replay a fixed derivation of examples, so a CI result can be reproduced and a
landing never depends on what a random draw found that day.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("MILLCHAIN_CI") == "1":
    settings.load_profile("ci")
