"""Safety drills: scripted failure scenarios on a throwaway paper exchange.

Users run them before going live (`warden drill NAME`); each prints its steps with timings and
passes only if the safety net held.
"""

DRILLS = ("double-open", "silent-stop", "stop-overrun", "stop-removed", "failover")
