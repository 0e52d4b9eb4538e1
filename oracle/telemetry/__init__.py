"""Factory telemetry: AI4I 2020-faithful machine simulation, its CSV layout and summary figures.

`MachineSimulator` streams one machine's readings; `simulate_fleet` runs several machines;
`write_csv`/`read_csv` use the AI4I 2020 column layout; `summary` computes the figures the
published data set is checked against.
"""

from oracle.telemetry.ai4i_csv import read_csv, write_csv
from oracle.telemetry.reading import Quality, Reading
from oracle.telemetry.simulator import MachineSimulator, simulate_fleet
from oracle.telemetry.summary import AI4I_FIGURES, summary

__all__ = [
    "AI4I_FIGURES",
    "MachineSimulator",
    "Quality",
    "Reading",
    "read_csv",
    "simulate_fleet",
    "summary",
    "write_csv",
]
