"""Tools that drive a real worker to measure it.

``worker_process`` (a ``kqueue run`` child that ends with its parent), ``synthetic`` (jobs that
burn the CPU and memory a trace row says), ``calibrate`` (the host constants the simulator needs),
``replay`` (a trace re-run for real) and ``demo`` (the prototype's check on the embedded backend).
"""
