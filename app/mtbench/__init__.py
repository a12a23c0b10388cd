"""MT-Bench compatibility: FastChat's llm_judge files in, the service's judging in between, FastChat's
judgment files and tables out (``judge mtbench run | show | agreement``)."""
