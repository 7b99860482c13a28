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
from .modeling_audio_llm import AudioLLMForAudioClassification, AudioLLMForConditionalGeneration
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

# speech-encoder classifier
AutoConfig.register(SpeechEmotionConfig.model_type, SpeechEmotionConfig, exist_ok=True)
AutoModel.register(SpeechEmotionConfig, SpeechEmotionForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(
    SpeechEmotionConfig, SpeechEmotionForAudioClassification, exist_ok=True
)
AutoFeatureExtractor.register(SpeechEmotionConfig, SpeechEmotionFeatureExtractor, exist_ok=True)
SpeechEmotionConfig.register_for_auto_class()
SpeechEmotionForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
SpeechEmotionFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

# audio-LLM
AutoConfig.register(AudioLLMConfig.model_type, AudioLLMConfig, exist_ok=True)
AutoModel.register(AudioLLMConfig, AudioLLMForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(AudioLLMConfig, AudioLLMForConditionalGeneration, exist_ok=True)
AutoModelForAudioClassification.register(AudioLLMConfig, AudioLLMForAudioClassification, exist_ok=True)
AutoProcessor.register(AudioLLMConfig, AudioLLMProcessor, exist_ok=True)
AudioLLMConfig.register_for_auto_class()
AudioLLMForConditionalGeneration.register_for_auto_class("AutoModel")
AudioLLMForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
AudioLLMProcessor.register_for_auto_class("AutoProcessor")

# graph fusion of several encoders, text, F0 and a spectral CNN
AutoConfig.register(GraphFusionConfig.model_type, GraphFusionConfig, exist_ok=True)
AutoModel.register(GraphFusionConfig, GraphFusionForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(GraphFusionConfig, GraphFusionForAudioClassification, exist_ok=True)
AutoFeatureExtractor.register(GraphFusionConfig, GraphFusionFeatureExtractor, exist_ok=True)
GraphFusionConfig.register_for_auto_class()
GraphFusionForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
GraphFusionFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

# text-LLM classifier (transcripts)
AutoConfig.register(TextLLMConfig.model_type, TextLLMConfig, exist_ok=True)
AutoModel.register(TextLLMConfig, TextLLMForSequenceClassification, exist_ok=True)
AutoModelForSequenceClassification.register(TextLLMConfig, TextLLMForSequenceClassification, exist_ok=True)
TextLLMConfig.register_for_auto_class()
TextLLMForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

# ensembles of classifiers (members referenced by path or Hub id)
AutoConfig.register(EnsembleConfig.model_type, EnsembleConfig, exist_ok=True)
AutoModel.register(EnsembleConfig, EnsembleForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(EnsembleConfig, EnsembleForAudioClassification, exist_ok=True)
AutoFeatureExtractor.register(EnsembleConfig, SpeechEmotionFeatureExtractor, exist_ok=True)
EnsembleConfig.register_for_auto_class()
EnsembleForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")

# Qwen2-Audio fine-tuned for SER (THAU task 2): transformers' model, a config with the prompt and labels
AutoConfig.register(Qwen2AudioSERConfig.model_type, Qwen2AudioSERConfig, exist_ok=True)
AutoModel.register(Qwen2AudioSERConfig, Qwen2AudioSERForConditionalGeneration, exist_ok=True)
AutoModelForAudioClassification.register(Qwen2AudioSERConfig, Qwen2AudioForAudioClassification, exist_ok=True)
Qwen2AudioSERConfig.register_for_auto_class()
Qwen2AudioSERForConditionalGeneration.register_for_auto_class("AutoModel")
Qwen2AudioForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")

__all__ = [
    "AudioLLMConfig",
    "AudioLLMForAudioClassification",
    "AudioLLMForConditionalGeneration",
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
