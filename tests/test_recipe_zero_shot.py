"""recipes/zero_shot.py with --push_to_hub: the folder it pushes has a card that loads the model from
--hub_model_id, and --max_test_samples cuts the test split it scores."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_text_llm import text_dataset, tiny_llm  # noqa: E402, F401  (the fixtures)


def test_push_sends_a_card_that_loads_the_hub_id(tiny_llm, text_dataset, tmp_path, monkeypatch):  # noqa: F811
    from serhub.recipes import zero_shot

    pushed = []
    monkeypatch.setattr(zero_shot, "push", lambda folder, repo_id, private: pushed.append((folder, repo_id)))
    out = tmp_path / "zs"
    results = zero_shot.main(
        ["--model", str(tiny_llm), "--dataset_name_or_path", text_dataset, "--output_dir", str(out),
         "--bootstrap", "0", "--max_test_samples", "2", "--push_to_hub", "true", "--hub_model_id", "someone/zs"]
    )  # fmt: skip
    assert pushed == [(str(out), "someone/zs")]
    assert 'model="someone/zs"' in (out / "README.md").read_text()
    assert results["test"]["num_samples"] == 2 and results["validation"]["num_samples"] > 2
