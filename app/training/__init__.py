"""The training stage of self-rewarding jobs: SFT and DPO with TRL, each saved as a full model folder.

``run_sft`` / ``run_dpo`` (in ``sft.py`` / ``dpo.py``) train in this process; ``runner.run_in_subprocess``
runs one in a child process. This package imports neither torch nor TRL until a training module is
imported, so specs and the runner are cheap to import.
"""
