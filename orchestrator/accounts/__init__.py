"""Accounts: API tokens for the SDK, agents and scripts, and the first local account."""
