"""What aios tells about itself: OpenTelemetry tracing, the local trace file and the metrics."""
