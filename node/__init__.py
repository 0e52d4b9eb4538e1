"""The millchain node process: HTTP server and peer client, mempool, block building, execution of
committed blocks, SQLite storage, and the loop that drives the consensus replica."""
