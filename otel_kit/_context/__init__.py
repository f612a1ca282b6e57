"""Context across hops: the order id in baggage (order), what arrives from upstream (incoming),
the internet edge (edge), and the W3C rules the SDK's propagator skips (w3c)."""
