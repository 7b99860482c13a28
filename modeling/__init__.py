"""serhub models as transformers remote code. Importing this package registers every class with
the Auto* factories; ``register_for_auto_class`` makes ``save_pretrained`` copy the code into the
checkpoint, so it loads with ``trust_remote_code=True`` where serhub is not installed."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForCausalLM,
    AutoProcessor,
)

from .configuration_audio_llm import AudioLLMConfig
from .configuration_speech_emotion import SpeechEmotionConfig
from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
from .modeling_audio_llm import AudioLLMForAudioClassification, AudioLLMForConditionalGeneration
from .modeling_speech_emotion import SpeechEmotionForAudioClassification
from .processing_audio_llm import AudioLLMProcessor

# speech-encoder classifier
AutoConfig.register(SpeechEmotionConfig.model_type, SpeechEmotionConfig)
AutoModel.register(SpeechEmotionConfig, SpeechEmotionForAudioClassification)
AutoModelForAudioClassification.register(SpeechEmotionConfig, SpeechEmotionForAudioClassification)
AutoFeatureExtractor.register(SpeechEmotionConfig, SpeechEmotionFeatureExtractor)
SpeechEmotionConfig.register_for_auto_class()
SpeechEmotionForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
SpeechEmotionFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

# audio-LLM
AutoConfig.register(AudioLLMConfig.model_type, AudioLLMConfig)
AutoModel.register(AudioLLMConfig, AudioLLMForConditionalGeneration)
AutoModelForCausalLM.register(AudioLLMConfig, AudioLLMForConditionalGeneration)
AutoModelForAudioClassification.register(AudioLLMConfig, AudioLLMForAudioClassification)
AutoProcessor.register(AudioLLMConfig, AudioLLMProcessor)
AudioLLMConfig.register_for_auto_class()
AudioLLMForConditionalGeneration.register_for_auto_class("AutoModel")
AudioLLMForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
AudioLLMProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "AudioLLMConfig",
    "AudioLLMForAudioClassification",
    "AudioLLMForConditionalGeneration",
    "AudioLLMProcessor",
    "SpeechEmotionConfig",
    "SpeechEmotionFeatureExtractor",
    "SpeechEmotionForAudioClassification",
]
