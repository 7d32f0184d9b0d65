"""Eventing: Broker, Triggers and PingSources, and the local broker and cron honouring them."""
