"""Span and log export: spans as rows (rows), queued by the batch processor (processor),
encoded by hand (encoder), sent in requests a receiver takes (split), drops counted (drops),
the SDK's per-item warnings rate-limited (sdk_warnings), and the optional child process that
exports off the service's GIL (child)."""
