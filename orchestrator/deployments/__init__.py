"""Deployments (a flow's stored code, parameters, tags and work queue) and the work queues agents serve."""
