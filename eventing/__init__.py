"""Eventing: the local broker and cron honouring the Triggers and PingSources (rendered into
manifests/), and the dead-letter sink the cluster's Triggers give up to."""
