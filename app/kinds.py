"""The job kinds this service runs: the one list. Importing this module registers them (the API and
the workers both do, before they read any job)."""

from __future__ import annotations

from app.jobs import kinds
from app.judging import kind as judging
from app.prompt_opt import kind as prompt_opt
from app.self_reward import kind as self_reward

ALL = (*judging.KINDS, prompt_opt.KIND, self_reward.KIND)

for _kind in ALL:
    kinds.register(_kind)
