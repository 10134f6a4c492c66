"""What the worker runs on the broker's records: ``ingest.BatchIngest`` takes every
poll batch of the input and rerouted topics (stream_app/worker.py wires it)."""
