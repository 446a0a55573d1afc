"""Campaigns in Slack: the New campaign modal, the preview, the parent message and its end."""
