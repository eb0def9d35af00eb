"""The campaigns service's use cases: the members' projection and triggers (``projection``,
``triggers``), definitions and their lifecycle (``definitions``), the planner (``planning``), the
delivery of contacts (``delivery``), public links and provider callbacks (``public``), results."""
