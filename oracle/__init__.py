"""The embedded ML oracle: factory telemetry, the fault model, its evaluation and its artifacts.

`oracle.telemetry` simulates machines producing AI4I 2020-style readings and reads and writes
them in the AI4I CSV layout. `oracle.model` turns readings into physics features, trains and
calibrates a fault classifier, saves it as a hash-checked skops artifact, evaluates it, and exposes
integer inference (`FaultModel.predict_bp`) for the on-chain reporter.
"""
