"""What a run tells a newcomer: model cards that load from where the model is, and a quick test
subset (``--max_test_samples``)."""

import logging

import datasets
import pytest
from serhub.recipes.arguments import DataArguments
from serhub.recipes.data import TEST_SUBSET_SEED, limit_test_split, load_dataset_dict
from serhub.recipes.reporting import TEMPLATES, write_model_card

RESULTS = {
    "label_logits": {"macro_f1": 0.5, "unweighted_accuracy": 0.45, "accuracy": 0.55},
    "transcript_conditioned": {"macro_f1": 0.14, "unweighted_accuracy": 0.2, "accuracy": 0.2},
}


def audio_llm_card(output_dir, **kwargs):
    path = write_model_card(
        output_dir,
        template="audio_llm.md",
        model_name="serhub-emosllm",
        labels=["neutral", "happy"],
        dataset_name="synthetic_emotions",
        results=RESULTS,
        training_config={"audio model": "offline:whisper-tiny.en"},
        wer=None,
        **kwargs,
    )
    return path.read_text()


def test_card_usage_loads_the_local_folder(tmp_path):
    out = tmp_path / "outputs" / "emosllm"
    out.mkdir(parents=True)
    card = audio_llm_card(out)
    assert f'pipeline("audio-classification", model="{out}"' in card
    assert 'model="serhub-emosllm"' not in card  # the display name is no Hub id
    assert "best mode" not in card  # transcript_conditioned is not the better mode


def test_card_usage_names_the_hub_repo_when_given(tmp_path):
    card = audio_llm_card(tmp_path, model_id="someone/ser-emosllm")
    assert 'model="someone/ser-emosllm"' in card


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.md")))
def test_no_card_loads_its_display_name(template):
    text = (TEMPLATES / template).read_text()
    assert 'model="{{ model_name }}"' not in text and 'from_pretrained("{{ model_name }}"' not in text


def test_max_test_samples_is_checked():
    with pytest.raises(ValueError, match="max_test_samples must be at least 1"):
        DataArguments(max_test_samples=0)


@pytest.fixture
def tiny_dataset_dict():
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"x": list(range(10))}),
            "test": datasets.Dataset.from_dict({"x": list(range(100))}),
        }
    )


def test_max_test_samples_scores_a_fixed_subset_of_the_test_split(tiny_dataset_dict, caplog):
    args = DataArguments(max_test_samples=12)
    with caplog.at_level(logging.INFO, logger="serhub"):
        limited = limit_test_split(tiny_dataset_dict, args)
    rows = limited["test"]["x"]
    assert len(rows) == 12 and rows == sorted(rows) and len(set(rows)) == 12
    assert rows != list(range(12))  # a spread of the split, not its first clips
    assert max(rows) > 50
    assert limit_test_split(tiny_dataset_dict, args)["test"]["x"] == rows  # the same clips every run
    assert len(limited["train"]) == 10 and len(tiny_dataset_dict["test"]) == 100  # nothing else changes
    assert "scoring 12 of the 100 clips of the 'test' split" in caplog.text
    assert f"seed {TEST_SUBSET_SEED}" in caplog.text
    assert limit_test_split(tiny_dataset_dict, DataArguments())["test"] is tiny_dataset_dict["test"]
    assert len(limit_test_split(tiny_dataset_dict, DataArguments(max_test_samples=500))["test"]) == 100


def test_load_dataset_dict_applies_max_test_samples(tiny_dataset_dict, tmp_path):
    tiny_dataset_dict.save_to_disk(tmp_path / "data")
    args = DataArguments(dataset_name_or_path=str(tmp_path / "data"), max_test_samples=5)
    assert len(load_dataset_dict(args.dataset_name_or_path, args)["test"]) == 5
    assert len(load_dataset_dict(args.dataset_name_or_path)["test"]) == 100


def test_max_test_samples_parses_from_the_command_line():
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser([DataArguments]).parse_args_into_dataclasses(["--max_test_samples", "24"])
    assert args.max_test_samples == 24


def test_an_embedded_corpus_loads_by_name(tmp_path, monkeypatch):
    """`serhub evaluate --dataset synthetic_emotions` (the README's quick start) and
    `--dataset_name_or_path synthetic_emotions` name the corpus serhub builds, not a Hub id."""
    import serhub.recipes.data as data

    built = datasets.DatasetDict({"test": datasets.Dataset.from_dict({"x": [1, 2, 3]})})
    built.save_to_disk(tmp_path / "built")
    monkeypatch.setattr(data, "embedded_dataset_path", lambda name: tmp_path / "built")
    monkeypatch.chdir(tmp_path)
    assert load_dataset_dict("synthetic_emotions")["test"]["x"] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="embedded corpus"):
        load_dataset_dict("no_such_corpus")


def test_every_results_file_carries_what_the_run_cost_and_where_it_ran(tmp_path, monkeypatch):
    import json

    import torch
    from serhub.recipes import reporting

    path = reporting.write_eval_results(tmp_path, {"test": {"macro_f1": 0.5}})
    results = json.loads(path.read_text())
    run = results["run"]
    assert results["test"] == {"macro_f1": 0.5} and path.name == "eval_results.json"
    assert set(run) == {"wall_s", "peak_rss_gb", "torch_threads", "cpu_count", "world_size", "commit", "date"}
    assert run["wall_s"] > 0 and 0 < run["peak_rss_gb"] < 1000  # this process: seconds, GB
    assert run["torch_threads"] == torch.get_num_threads() and run["world_size"] == 1
    # a fresh copy without git metadata (a tarball, a pip install) records no commit, and does not fail
    monkeypatch.setattr(reporting, "REPO", tmp_path)
    assert reporting.run_record()["commit"] is None


def test_a_failed_push_is_one_line_and_keeps_the_folder(tmp_path, monkeypatch, capsys):
    """Offline (or refused) pushes end the recipe with one line naming the saved folder, exit 2."""
    from serhub.recipes.logs import run_main
    from serhub.recipes.reporting import push

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "config.json").write_text("{}")

    def main(argv):
        push(str(tmp_path), "someone/ser-model", None)

    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert "pushing to someone/ser-model failed" in err[0] and f"saved in {tmp_path}" in err[0]
    assert (tmp_path / "config.json").is_file()
