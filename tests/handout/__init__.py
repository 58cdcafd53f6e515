"""The lab handout's tasks, checked against worked solutions."""
