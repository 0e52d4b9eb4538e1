"""The factory scenario: does predictive maintenance on a blockchain pay off?

`millchain scenario run` drives a live cluster through simulated hours of a plant: customers
order custom products, suppliers deliver, simulated machines (the oracle's telemetry) work the
orders and report their readings, maintainers answer work orders, and production moves off
machines that go down or are flagged. `millchain scenario compare` runs the three maintenance
strategies on the same seed and writes a report.

- `config`: the scenario's parameters, the strategies and the cost model;
- `books`: the business accounting (failures, downtime, OEE, orders, cost), pure;
- `demand`: the seeded stream of customer orders, the same for every strategy;
- `chain`: signs and submits the plant's transactions in phases and reads the chain back;
- `plant`: the step loop that ties them together;
- `report`: the comparison's JSON, plots and HTML page.
"""
