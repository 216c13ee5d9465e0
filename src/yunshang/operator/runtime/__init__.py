"""The operator's runtime: what every feature is built on, knowing none of them.

settings.py (read once), kube.py (the API calls and the kind table), reflector.py (list+watch into
the event loop), queue.py (the de-duplicating work queue), controller.py (a queue reconciled in
threads), cache.py (the tenants' slim records), audit.py (appending to the audit trail),
metrics.py, leader.py (the Lease) and manager.py (the Runtime that holds them together)."""
