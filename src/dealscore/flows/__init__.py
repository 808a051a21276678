"""Flows: a run made of several jobs in order (the nightly loop). Jobs never import each other;
a flow is where they are put together."""
