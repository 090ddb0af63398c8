"""Scale-out roles (DESIGN §6): `serve --role ingest|sequencer|detector|api` on PostgreSQL + NATS."""
