"""Delivery scenarios: what the operator's app receives from GREEN-API under each wiring.

- ``scenarios.app_stub``: the operator's app (records every POST; can fail, be slow, be down, and
  forward stateInstanceChanged bodies to the receiver: wiring (b)).
- ``scenarios.proxy``: a round-robin HTTP proxy (two relays behind one address).
- ``scenarios.measure``: what counts as stale, fresh, lost, duplicate, in order: defined once, here.
- ``scenarios.runner``: the wirings (W0-W3) and the scenarios (i)-(v), run against the emulator.

Imported by bench/delivery.py, bench/relay_cost.py and tests/e2e/test_delivery_scenarios.py.
"""
