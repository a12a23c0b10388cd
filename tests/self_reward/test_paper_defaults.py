"""The request's defaults are the paper's settings (Yuan et al. 2024, section 3), except where the README's
table records why not."""

from app.self_reward.schemas import SelfRewardRequest


def test_training_defaults_are_the_papers() -> None:
    request = SelfRewardRequest()
    assert (request.sft.learning_rate, request.sft.batch_size) == (5.5e-6, 16)
    assert (request.dpo.learning_rate, request.dpo.batch_size, request.dpo.beta) == (1e-6, 16, 0.1)
    assert request.dpo.loss_type == "sigmoid"


def test_generation_defaults_are_the_papers() -> None:
    request = SelfRewardRequest()
    assert (request.instruct.shots, request.instruct.seed_shots) == (8, 6)
    assert (request.instruct.temperature, request.instruct.top_p) == (0.6, 0.9)
    assert (request.candidates.n, request.candidates.temperature, request.candidates.top_p) == (4, 0.7, 0.9)
    assert (request.judge.samples, request.judge.temperature, request.judge.top_p) == (3, 0.7, 0.9)
