"""The simulator and tuner: a SimPy model of the kqueue runtime (see issue 5 and 6)."""
