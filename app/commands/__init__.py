"""Sub-commands of ``judge`` that talk to a running service through ``judge_client`` (batch judging,
jobs), and what they share: exit codes, connection options, progress bars."""
