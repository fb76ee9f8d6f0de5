"""The operator's Prometheus metrics (issue 13): defined here, served on --metrics-port."""
