"""What a plan looks like to a person: the summary table, the drawing, the expanded spec and the
op catalogue."""
