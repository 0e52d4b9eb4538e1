"""PBFT (Castro and Liskov) as a sans-IO state machine, and a deterministic harness for it.

`replica.Replica` is fed `events` and returns `actions`; it performs no IO, reads no clock and
draws no randomness. `messages` is the one codec for what replicas say to each other. `sim` joins
replicas through a seeded virtual network and checks that committed history never forks.
"""
