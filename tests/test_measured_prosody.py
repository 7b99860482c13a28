"""benchmarks/measured_prosody.py's enrolment: which clips enrol a voice, and numbers relative to them."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location(
    "measured_prosody", Path(__file__).parents[1] / "benchmarks" / "measured_prosody.py"
)
measured_prosody = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measured_prosody)

NEUTRAL = 0


def test_each_voice_enrols_on_its_neutral_clips_first():
    speakers = ["a", "a", "a", "a", "b", "b", "b"]
    emotions = np.array([2, 0, 3, 0, 1, 2, 0])
    rows = measured_prosody.enrolment_rows(speakers, emotions, NEUTRAL, 2)
    # a: its two neutral clips; b: its one neutral clip, then its first other clip
    assert rows.tolist() == [False, True, False, True, True, False, True]
    assert not measured_prosody.enrolment_rows(speakers, emotions, NEUTRAL, 0).any()
    # more clips asked than a voice has: all of them
    assert measured_prosody.enrolment_rows(speakers, emotions, NEUTRAL, 9).all()


def test_numbers_relative_to_the_enrolled_reference():
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 0.0], [100.0, 7.0], [104.0, 9.0]])
    speakers = ["a", "a", "a", "b", "b"]
    reference = np.array([True, True, False, True, False])
    out = measured_prosody.relative_to_reference(x, speakers, reference)
    np.testing.assert_allclose(out[:3], x[:3] - [2.0, 20.0])  # a's reference: the mean of its first two
    np.testing.assert_allclose(out[3:], x[3:] - [100.0, 7.0])
    np.testing.assert_allclose(
        x, np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 0.0], [100.0, 7.0], [104.0, 9.0]])
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scores_of", "some/model"], "--scores_of needs --enroll_per_speaker"),
        (["--enroll_per_speaker", "2"], "--enroll_per_speaker needs --model"),
        (["--model", "m", "--enroll_per_speaker", "-1"], "a number of clips per voice"),
    ],
)
def test_inconsistent_options_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit):
        measured_prosody.main(argv)
    assert message in capsys.readouterr().err
