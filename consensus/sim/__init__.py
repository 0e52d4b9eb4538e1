"""A deterministic harness for replicas: a seeded virtual network, a trivial app, a safety checker.

Everything random comes from one `random.Random(seed)` created by `harness.Cluster`, so a seed is
a reproducible run; a `SafetyViolation` names the seed that produced it.
"""
