"""The console: the browser workspace for agents, marketers and supervisors, served by the gateway
at ``/console/``. Static files only (plain ES modules, no build step); every call it makes is to
the gateway's public ``/v1/…`` API with the caller's own session."""
