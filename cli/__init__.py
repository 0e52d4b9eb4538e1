"""The `millchain` command line: keys, genesis, cluster control, client commands, bench, demo."""
