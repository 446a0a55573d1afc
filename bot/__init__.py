"""Robo-call bot: place and follow Intron voicebot calls from Slack."""
