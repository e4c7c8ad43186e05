"""Benchmarks (`make bench`): each module measures us and the peer named in its issue in the
same run, on the same database and data, and prints both side by side."""
