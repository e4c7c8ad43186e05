"""The department web console at /console (issue 13): Chinese-first pages over the service's own
JSON API, signed in by the session cookie. It owns no tables."""
