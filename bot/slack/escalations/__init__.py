"""Escalations in Slack: policies (handlers.py, views.py) and running ones (running.py,
run_views.py)."""
