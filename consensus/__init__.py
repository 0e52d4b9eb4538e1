"""PBFT (Castro and Liskov) as a sans-IO state machine, and a deterministic harness for it.

`replica.Replica` is fed `events` and returns `actions`; it performs no IO, reads no clock and
draws no randomness; `normalcase` holds the normal case, `viewchange` the pure view-change and
new-view checks and choice. `messages` (with `codec`) is the one format for what replicas say to
each other. `sim` joins replicas through a seeded fault-injecting network (`sim.simulator.run_sim`)
and checks that committed history never forks and that requests commit once the network heals.
"""
