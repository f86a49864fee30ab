"""What aios puts between its code and Temporal: the client connection and its data converter
(payload codec and store, failure redaction, inbound decoding), search attributes, task queues,
the codec server for the Web UI, and the reading of server errors. See docs/ARCHITECTURE.md."""
