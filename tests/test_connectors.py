"""The connector table: each connector class says how many audio tokens it makes, where they go in
the prompt and which encoder layers it reads; configs, processors and models take it from there."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_parts  # noqa: E402


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = make_parts(tmp_path_factory.mktemp("parts"))
    return root


def test_table_names_every_connector_once():
    from serhub.modeling.connectors import CONNECTORS, Connector

    assert set(CONNECTORS) == {"linear", "query_pooling", "vae_ib", "ctc_path"}
    for name, cls in CONNECTORS.items():
        assert issubclass(cls, Connector) and cls.name == name


@pytest.mark.parametrize(
    "name, kwargs, frames, tokens, groups, every_layer",
    [
        ("linear", {"stack_factor": 2}, 25, 13, 1, False),
        ("query_pooling", {"num_queries": 4, "mapper_heads": 2}, 25, 4, 1, False),
        ("vae_ib", {"stack_factor": 5, "vib_latent_size": 8}, 25, 5, 2, True),
    ],
)
def test_model_processor_and_config_agree_with_the_class(
    parts, name, kwargs, frames, tokens, groups, every_layer
):
    from serhub.modeling import AudioLLMForConditionalGeneration
    from serhub.modeling.connectors import CONNECTORS

    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc", parts / "llm", LABELS, connector=name, **kwargs
    )
    cls = CONNECTORS[name]
    assert type(model.connector) is cls and model.config.connector_class is cls
    assert (
        model.config.audio_token_counts(frames) == processor.audio_token_counts(frames) == (tokens,) * groups
    )
    assert (
        model.config.num_audio_tokens(frames)
        == processor.num_audio_tokens_from_frames(frames)
        == tokens * groups
    )
    assert model.config.audio_token_groups == len(cls.groups) == groups
    assert cls.every_layer is every_layer
    # the model's tokens for a clip: as many as the class says, per group
    layers = model.audio_encoder.model.config.num_hidden_layers + 1  # the embeddings' output too
    states = torch.randn(1, layers, frames, model.config.audio_hidden_size)
    if not every_layer:
        states = states[:, -1]
    out, mask = model.audio_tokens(encoder_hidden_states=states)
    assert out.shape[1] == tokens * groups and int(mask.sum()) == tokens * groups
    assert (model.config.mapper_output_scale is not None) is cls.scaled_output


def test_unknown_connector_lists_the_known_ones():
    from serhub.modeling import AudioLLMConfig

    with pytest.raises(
        ValueError, match=r"connector must be one of \('linear', 'query_pooling', 'vae_ib', 'ctc_path'\)"
    ):
        AudioLLMConfig(connector="qformer")
    with pytest.raises(ValueError, match="num_queries must be >= 1"):
        AudioLLMConfig(connector="query_pooling", num_queries=0)
    with pytest.raises(ValueError, match="stack_factor must be >= 1"):
        AudioLLMConfig(connector="linear", stack_factor=0)


def test_only_the_query_pooling_mapper_warns_of_collapse():
    from serhub.modeling.connectors import COLLAPSE_DIVERSITY, LinearProjector, QueryPoolingMapper

    collapsed = {"token_diversity": COLLAPSE_DIVERSITY / 10, "token_norm_ratio": 1.0}
    healthy = {"token_diversity": 0.5, "token_norm_ratio": 1.0}
    mapper = QueryPoolingMapper(8, 8, num_queries=2, num_layers=1, num_heads=2)
    assert "collapsed" in mapper.health_warning(collapsed) and mapper.health_warning(healthy) is None
    assert LinearProjector(8, 8, 2).health_warning(collapsed) is None


def test_linear_projector_standardises_frames_with_statistics_saved_with_the_model(parts, tmp_path):
    from serhub.modeling import AudioLLMConfig, AudioLLMForConditionalGeneration

    torch.manual_seed(0)
    model, _ = AudioLLMForConditionalGeneration.from_pretrained_components(
        parts / "enc",
        parts / "llm",
        LABELS,
        connector="linear",
        stack_factor=2,
        projector_frame_norm="global",
    )
    projector = model.connector
    d = model.config.audio_hidden_size
    # frames with a large shared offset and scale (as Whisper's are): training gathers their statistics
    frames = 5.0 + 3.0 * torch.randn(2, 40, d)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False  # padding is not counted
    model.train()
    projector(frames, mask)
    valid = frames[mask]
    assert int(projector.in_norm.num_frames) == valid.shape[0]
    torch.testing.assert_close(projector.in_norm.running_mean, valid.mean(0))
    torch.testing.assert_close(projector.in_norm.running_var, valid.var(0, unbiased=False))
    # a frozen projector (a later phase training LoRA only) keeps them
    projector.proj.weight.requires_grad_(False)
    projector(frames + 100.0, mask)
    assert int(projector.in_norm.num_frames) == valid.shape[0]
    projector.proj.weight.requires_grad_(True)
    # inference: a clip alone equals the clip in a padded batch, and the saved model gives the same tokens
    model.eval()
    with torch.no_grad():
        batched, _ = projector(frames, mask)
        alone, _ = projector(frames[1:, :30], mask[1:, :30])
    torch.testing.assert_close(batched[1, :15], alone[0])
    model.save_pretrained(tmp_path / "saved")
    reloaded = AudioLLMForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    assert reloaded.config.projector_frame_norm == "global"
    with torch.no_grad():
        torch.testing.assert_close(reloaded.connector(frames, mask)[0], batched)
    # a config built without it (an earlier checkpoint) keeps THAU's raw frames
    assert AudioLLMConfig(connector="linear").projector_frame_norm == "none"
    with pytest.raises(
        ValueError, match=r"projector_frame_norm must be one of \('none', 'layer', 'global'\)"
    ):
        AudioLLMConfig(connector="linear", projector_frame_norm="batch")
