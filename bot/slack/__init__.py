"""The Slack adapter: slash command, modals and messages over the core service."""
