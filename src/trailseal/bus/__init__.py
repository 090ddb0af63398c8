"""The ingest bus between receivers and the writer (DESIGN §6).

`trail.sealer` is whatever takes validated, protected events and answers with receipts:
- embedded mode (`serve --role all`): the local Sealer (bus/local.py), which seals and commits;
- scale-out mode (`serve --role ingest|api|detector`): NatsBus (bus/nats.py), which publishes to a
  JetStream stream and answers once JetStream has acknowledged; a sequencer (cluster/) seals later.
"""

from trailseal.bus.local import Bus, BusUnavailable, Queued

__all__ = ["Bus", "BusUnavailable", "Queued"]
