"""The lab handout's self-checks: `python -m securemsg_lab.tasks check N` (`make check`).

handout/HANDOUT.md is the students' text, handout/INSTRUCTOR.md the solutions and expected
output, handout/bugs/ the planted-bug patches that `start` applies to the workspace.
"""
