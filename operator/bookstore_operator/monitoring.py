"""Reconcile the monitoring children (PodMonitor, PrometheusRule) of a Bookstore (issue 13)."""
