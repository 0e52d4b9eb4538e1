"""Settings shared by the whole suite.

Property-based tests explore new examples on every local run; under CI (`MILLCHAIN_CI=1`, set by
`.ci/run`) they replay a fixed derivation of examples, so a CI result can be reproduced and a
landing never depends on what a random draw found that day.
"""

from __future__ import annotations

import os

from hypothesis import settings

# No per-example deadline: on a loaded 2-core machine an example that touches the disk can take
# ten times its usual time, and speed is what the benchmarks measure, not the tests.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.load_profile("ci" if os.environ.get("MILLCHAIN_CI") == "1" else "dev")
