"""serhub models as transformers remote code. Importing this package registers every class with
the Auto* factories; ``register_for_auto_class`` makes ``save_pretrained`` copy the code into the
checkpoint, so it loads with ``trust_remote_code=True`` where serhub is not installed."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoProcessor,
)

from .configuration_audio_llm import AudioLLMConfig
from .configuration_ensemble import EnsembleConfig
from .configuration_graph_fusion import GraphFusionConfig
from .configuration_speech_emotion import SpeechEmotionConfig
from .configuration_text_llm import TextLLMConfig
from .feature_extraction_graph_fusion import GraphFusionFeatureExtractor
from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
from .modeling_audio_llm import (
    AudioLLMForAudioClassification,
    AudioLLMForConditionalGeneration,
    AudioLLMModel,
)
from .modeling_ensemble import EnsembleForAudioClassification
from .modeling_graph_fusion import GraphFusionForAudioClassification
from .modeling_qwen2_audio_ser import (
    Qwen2AudioForAudioClassification,
    Qwen2AudioSERConfig,
    Qwen2AudioSERForConditionalGeneration,
)
from .modeling_speech_emotion import SpeechEmotionForAudioClassification
from .modeling_text_llm import TextLLMForSequenceClassification
from .processing_audio_llm import AudioLLMProcessor

# model type -> its classes: (config, {Auto class: model class}, feature extractor, processor).
# Each model class is registered with every Auto class it answers to; the first Auto class named is the
# one save_pretrained records for it (``register_for_auto_class``); more entries are added at save.
REGISTRY = (
    (
        SpeechEmotionConfig,
        {
            AutoModelForAudioClassification: SpeechEmotionForAudioClassification,
            AutoModel: SpeechEmotionForAudioClassification,
        },
        SpeechEmotionFeatureExtractor,
        None,
    ),
    (
        AudioLLMConfig,
        {
            AutoModel: AudioLLMForConditionalGeneration,
            AutoModelForCausalLM: AudioLLMForConditionalGeneration,
            AutoModelForAudioClassification: AudioLLMForAudioClassification,
        },
        None,
        AudioLLMProcessor,
    ),
    (
        GraphFusionConfig,
        {
            AutoModelForAudioClassification: GraphFusionForAudioClassification,
            AutoModel: GraphFusionForAudioClassification,
        },
        GraphFusionFeatureExtractor,
        None,
    ),
    (
        TextLLMConfig,
        {
            AutoModelForSequenceClassification: TextLLMForSequenceClassification,
            AutoModel: TextLLMForSequenceClassification,
        },
        None,
        None,
    ),
    (
        EnsembleConfig,
        {
            AutoModelForAudioClassification: EnsembleForAudioClassification,
            AutoModel: EnsembleForAudioClassification,
        },
        # an ensemble reads raw audio; each member applies its own feature extractor
        SpeechEmotionFeatureExtractor,
        None,
    ),
    (
        Qwen2AudioSERConfig,
        {
            AutoModel: Qwen2AudioSERForConditionalGeneration,
            AutoModelForAudioClassification: Qwen2AudioForAudioClassification,
        },
        None,
        None,
    ),
)


def _register() -> None:
    for config, models, feature_extractor, processor in REGISTRY:
        AutoConfig.register(config.model_type, config, exist_ok=True)
        config.register_for_auto_class()
        recorded = set()
        for auto_class, model in models.items():
            auto_class.register(config, model, exist_ok=True)
            if model not in recorded:  # the first Auto class a model class is listed under
                model.register_for_auto_class(auto_class.__name__)
                recorded.add(model)
        if feature_extractor is not None:
            AutoFeatureExtractor.register(config, feature_extractor, exist_ok=True)
            feature_extractor.register_for_auto_class("AutoFeatureExtractor")
        if processor is not None:
            AutoProcessor.register(config, processor, exist_ok=True)
            processor.register_for_auto_class("AutoProcessor")


_register()

__all__ = [
    "AudioLLMConfig",
    "AudioLLMForAudioClassification",
    "AudioLLMForConditionalGeneration",
    "AudioLLMModel",
    "AudioLLMProcessor",
    "EnsembleConfig",
    "EnsembleForAudioClassification",
    "GraphFusionConfig",
    "GraphFusionFeatureExtractor",
    "GraphFusionForAudioClassification",
    "Qwen2AudioForAudioClassification",
    "Qwen2AudioSERConfig",
    "Qwen2AudioSERForConditionalGeneration",
    "SpeechEmotionConfig",
    "SpeechEmotionFeatureExtractor",
    "SpeechEmotionForAudioClassification",
    "TextLLMConfig",
    "TextLLMForSequenceClassification",
]
