"""The discrete-event machinery under the model, with no knowledge of kqueue.

``clock`` (``Call``: a timed callback without a SimPy process), ``cpu`` (cores shared by the
running jobs' CPU work, processor sharing), ``gil`` (one core shared by the inline threads) and
``memory`` (memory as ``(time_s, delta_mb)`` steps and the curve they add up to).
"""
