"""The shared data model of millchain: encoding, keys, transactions, blocks, certificates, genesis.

Nothing here performs IO except the explicit key-file and genesis-file helpers, reads a clock or
draws randomness that is not passed in.
"""
