import random
import re

import pytest

from app.self_reward.domain import InstructSettings
from app.self_reward.instruct import few_shot_conversation, filter_prompt, parse_new_prompt, rouge_l

SEEDS = [f"Seed task number {i}: explain topic {i} to a beginner." for i in range(10)]
GENERATED = [f"Generated task {i}: write a haiku about river {i}." for i in range(5)]
SETTINGS = InstructSettings()


def listed_tasks(content: str) -> list[tuple[int, str]]:
    return [(int(n), text) for n, text in re.findall(r"^Task (\d+): (.*)$", content, re.MULTILINE)]


def test_few_shot_mixes_six_seeds_and_two_generated_numbered_in_order() -> None:
    conversation = few_shot_conversation(SEEDS, GENERATED, SETTINGS, random.Random(0))
    assert len(conversation) == 1 and conversation[0]["role"] == "user"
    content = conversation[0]["content"]
    tasks = listed_tasks(content)
    assert [n for n, _ in tasks] == list(range(1, 9))
    texts = [t for _, t in tasks]
    assert sum(t in SEEDS for t in texts) == 6
    assert sum(t in GENERATED for t in texts) == 2
    assert len(set(texts)) == 8
    assert "Task 9" in content


def test_few_shot_is_reproducible_from_the_rng_and_varies_with_it() -> None:
    first = few_shot_conversation(SEEDS, GENERATED, SETTINGS, random.Random(7))
    again = few_shot_conversation(SEEDS, GENERATED, SETTINGS, random.Random(7))
    assert first == again
    others = {
        few_shot_conversation(SEEDS, GENERATED, SETTINGS, random.Random(s))[0]["content"] for s in range(10)
    }
    assert len(others) > 1


def test_few_shot_shuffles_generated_prompts_among_the_seeds() -> None:
    positions = set()
    for seed in range(30):
        content = few_shot_conversation(SEEDS, GENERATED, SETTINGS, random.Random(seed))[0]["content"]
        positions |= {n for n, text in listed_tasks(content) if text in GENERATED}
    assert len(positions) > 4


def test_seeds_fill_the_places_of_missing_generated_prompts() -> None:
    content = few_shot_conversation(SEEDS, GENERATED[:1], SETTINGS, random.Random(1))[0]["content"]
    texts = [t for _, t in listed_tasks(content)]
    assert len(texts) == 8 and sum(t in GENERATED for t in texts) == 1 and len(set(texts)) == 8

    content = few_shot_conversation(SEEDS, [], SETTINGS, random.Random(1))[0]["content"]
    assert len(set(listed_tasks(content))) == 8


def test_few_shot_list_is_shorter_when_there_are_few_prompts() -> None:
    content = few_shot_conversation(SEEDS[:3], GENERATED[:1], SETTINGS, random.Random(2))[0]["content"]
    assert [n for n, _ in listed_tasks(content)] == [1, 2, 3, 4]
    assert "Task 5" in content


def test_few_shot_respects_custom_shot_counts() -> None:
    settings = InstructSettings(shots=4, seed_shots=1)
    texts = [
        t
        for _, t in listed_tasks(
            few_shot_conversation(SEEDS, GENERATED, settings, random.Random(3))[0]["content"]
        )
    ]
    assert sum(t in SEEDS for t in texts) == 1 and sum(t in GENERATED for t in texts) == 3


def test_few_shot_without_any_prompt_raises() -> None:
    with pytest.raises(ValueError):
        few_shot_conversation([], [], SETTINGS, random.Random(0))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Write a poem about autumn.", "Write a poem about autumn."),
        ("Task 9: Write a poem about autumn.", "Write a poem about autumn."),
        ("task 9 - Write a poem about autumn.", "Write a poem about autumn."),
        ("**Task 9:** Write a poem about autumn.", "Write a poem about autumn."),
        ("9. Write a poem about autumn.", "Write a poem about autumn."),
        ("9) Write a poem about autumn.", "Write a poem about autumn."),
        ("Task: Write a poem about autumn.", "Write a poem about autumn."),
        ('  "Write a poem about autumn."  ', "Write a poem about autumn."),
        ("Task 9: “Write a poem about autumn.”", "Write a poem about autumn."),
        ("Write a poem about autumn.\nTask 10: Summarize a book.", "Write a poem about autumn."),
        ("Write a poem about autumn.\n\nTask 10: Summarize a book.", "Write a poem about autumn."),
        ("Task 9: Write a poem.\nTask 10: Summarize a book.\nTask 11: Sing.", "Write a poem."),
        ("Here is a new task:\n\nTask 9: Write a poem about autumn.", "Write a poem about autumn."),
        ("Plan a trip.\nList:\n1. flights\n2. hotels", "Plan a trip.\nList:\n1. flights\n2. hotels"),
        ('Compare "Dune" and "Foundation".', 'Compare "Dune" and "Foundation".'),
        ('"Dune" or "Foundation": which is better?', '"Dune" or "Foundation": which is better?'),
        ("1984: discuss its themes.", "1984: discuss its themes."),
        ("3.5 billion people: estimate their water use.", "3.5 billion people: estimate their water use."),
        ("Task-based learning: explain it.", "Task-based learning: explain it."),
        ("", None),
        ("   \n  ", None),
        ("Task 9:", None),
        ('Task 9: ""', None),
        ("Task 9:\nTask 10: Something else", None),
    ],
)
def test_parse_new_prompt(reply: str, expected: str | None) -> None:
    assert parse_new_prompt(reply) == expected


def test_rouge_l_values() -> None:
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("The Cat, sat!", "the cat sat") == 1.0
    assert rouge_l("apples and pears", "cars trucks") == 0.0
    # LCS 5 of 6 and 5 tokens: F = 2 * 5 / 11.
    assert rouge_l("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)
    # Order matters: reversed words share one-token subsequences only.
    assert rouge_l("a b c", "c b a") == pytest.approx(2 / 6)
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("...", "...") == 0.0


def test_rouge_l_is_symmetric() -> None:
    a, b = "write a short story about a dragon", "write a story about a friendly dragon in a cave"
    assert rouge_l(a, b) == rouge_l(b, a)


KEEP = "Explain how vaccines train the immune system."


def test_filter_keeps_a_good_prompt() -> None:
    assert filter_prompt(KEEP, SEEDS, SETTINGS) is None


@pytest.mark.parametrize(
    ("candidate", "reason_start"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("- Explain how vaccines work in detail.", "starts with punctuation"),
        ("(Explain how vaccines work in detail.)", "starts with punctuation"),
        ("ok ?? !! ## ** @@ %% ^^ ~~", "mostly symbols"),
        ("Hi → ★★★ ☆☆☆ ✓✓✓ ♥♥♥", "mostly symbols"),
        ("Explain vaccines.", "too short: 2 words"),
        ("Describe the attached image in detail.", "mentions 'image'"),
        ("Summarize the PICTURES below for me.", "mentions 'pictures'"),
        ("Plot a graph of the stock price over time.", "mentions 'graph'"),
        ("Read the file and list its contents.", "mentions 'file'"),
        ("Summarize the article at https://example.com/news please.", "mentions 'https'"),
        ("Open this url and tell me what it says.", "mentions 'url'"),
    ],
)
def test_filter_drops(candidate: str, reason_start: str) -> None:
    reason = filter_prompt(candidate, SEEDS, SETTINGS)
    assert reason is not None and reason.startswith(reason_start), reason


def test_filter_blocked_words_are_whole_words_only() -> None:
    for text in ["Write a paragraph about rivers.", "Create a dating profile for a cat.", "Imagine a city."]:
        assert filter_prompt(text, [], SETTINGS) is None, text


def test_filter_word_limits_are_inclusive() -> None:
    settings = InstructSettings(min_words=3, max_words=5)
    assert filter_prompt("Explain vaccines now.", [], settings) is None
    assert filter_prompt("Explain vaccines to my old dad.", [], settings) == "too long: 6 words (maximum 5)"
    assert filter_prompt("Explain vaccines to my dad.", [], settings) is None


def test_filter_accepts_other_scripts_and_arithmetic() -> None:
    assert filter_prompt("Объясни, как работают вакцины.", [], SETTINGS) is None
    assert filter_prompt("Compute 12345 * 67890 + 111213 by hand.", [], SETTINGS) is None


def test_filter_drops_near_duplicates_and_names_the_closest() -> None:
    existing = [
        "Explain how vaccines train the immune system of children.",
        "Explain how vaccines train the immune system.",
        "Write a poem about autumn.",
    ]
    reason = filter_prompt("Explain how vaccines train our immune system.", existing, SETTINGS)
    assert reason is not None
    assert reason.startswith("near-duplicate of 'Explain how vaccines train the immune system.'"), reason
    assert "ROUGE-L 0.86 >= 0.70" in reason


def test_filter_duplicate_threshold_is_inclusive_and_uses_word_order() -> None:
    candidate, other = "alpha beta gamma delta epsilon", "alpha beta gamma zeta eta"
    score = rouge_l(candidate, other)
    assert score == pytest.approx(0.6)
    assert filter_prompt(candidate, [other], InstructSettings(max_rouge_l=0.6)) is not None
    assert filter_prompt(candidate, [other], InstructSettings(max_rouge_l=0.61)) is None
    # The same words in reverse order share a bag of words but not a long subsequence.
    assert filter_prompt(candidate, ["epsilon delta gamma beta alpha"], SETTINGS) is None


def test_filter_quotes_a_long_duplicate_briefly() -> None:
    long_prompt = "Write a detailed essay about " + " ".join(f"topic{i}" for i in range(40))
    reason = filter_prompt(long_prompt, [long_prompt], SETTINGS)
    assert reason is not None and "..." in reason and len(reason) < 140


def test_a_reply_cut_off_inside_its_first_task_is_incomplete() -> None:
    from app.self_reward.instruct import task_complete

    assert task_complete("Explain tides.", hit_token_limit=False)
    assert task_complete("Explain tides.\nTask 10: Write a haiku about", hit_token_limit=True)
    assert not task_complete("Explain why the tides rise and fall twice a", hit_token_limit=True)
