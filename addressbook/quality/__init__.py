"""Quality reports of a department's own address list (issue 15 part 3)."""
