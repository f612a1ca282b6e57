"""The Prometheus query service: popular questions and any PromQL over Prometheus, cached by extent."""
