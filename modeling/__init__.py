"""serhub models as transformers remote code. Importing this package registers every class with
the Auto* factories; ``register_for_auto_class`` makes ``save_pretrained`` copy the code into the
checkpoint, so it loads with ``trust_remote_code=True`` where serhub is not installed."""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from .configuration_speech_emotion import SpeechEmotionConfig
from .feature_extraction_speech_emotion import SpeechEmotionFeatureExtractor
from .modeling_speech_emotion import SpeechEmotionForAudioClassification

AutoConfig.register(SpeechEmotionConfig.model_type, SpeechEmotionConfig)
AutoModel.register(SpeechEmotionConfig, SpeechEmotionForAudioClassification)
AutoModelForAudioClassification.register(SpeechEmotionConfig, SpeechEmotionForAudioClassification)
AutoFeatureExtractor.register(SpeechEmotionConfig, SpeechEmotionFeatureExtractor)

SpeechEmotionConfig.register_for_auto_class()
SpeechEmotionForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")
SpeechEmotionFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["SpeechEmotionConfig", "SpeechEmotionFeatureExtractor", "SpeechEmotionForAudioClassification"]
