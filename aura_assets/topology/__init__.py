"""Topology: workflow traces, their persistent-homology history, shape retrieval and drift."""
