"""`crisp upscale`: files, folders and partitions in, PNGs out; every input decoded by ingest's normalizer.

The odd encodings (EXIF-rotated JPEG, 16-bit PNG, CMYK JPEG, transparent PNG) are made here from a real
Set5 image; each output must equal the tiled upscale of the pixels ingest's `normalize` keeps.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from crisp.commands import upscale as upscale_cmd
from crisp.commands.upscale import save_png
from pipeline.clean import NormalizedImage, normalize
from tests.support.bad_images import corrupt_jpeg, encode
from tests.support.checkpoints import TRAINED_ARCH_KWARGS, trained_checkpoint, trained_espcn_state
from tests.support.cli import run_command
from tests.support.image_partitions import write_image_partition
from training.archs import build_arch
from training.serve.upscale import upscale_image

torch.set_num_threads(1)


def _cli(*argv):
    return run_command(upscale_cmd, "upscale", *argv)


def test_cli_upscales_files_folders_and_a_partition(
    tmp_path, shared_data, product_photos, monkeypatch, capsys
):
    from pipeline.storage import Storage

    root = tmp_path / "root"
    monkeypatch.setenv("CRISP_ROOT", f"file://{root}")
    photos = sorted(product_photos.glob("*.jpg"))[:2]
    write_image_partition(Storage(f"file://{root}"), "2026-03-01", photos, max_side=64)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(photos[0]).convert("RGB").resize((40, 50)).save(folder / "a.png")
    Image.open(photos[1]).convert("RGBA").resize((30, 20)).save(folder / "b.png")
    single = tmp_path / "single.jpg"
    Image.open(photos[0]).convert("RGB").resize((33, 21)).save(single)
    ckpt = trained_checkpoint(tmp_path / "m.ckpt", shared_data / "sr_train" / "T91")
    inputs = [
        str(single),
        str(folder),
        "images/2026-03-01",
        "--model",
        str(ckpt),
        "--tile",
        "32",
        "--overlap",
        "4",
    ]
    out = tmp_path / "out"
    assert _cli(*inputs, "--out", str(out), "--side-by-side") == 0, capsys.readouterr().err
    written = sorted(p.name for p in out.glob("*.png"))
    assert len(written) == 2 * 5 and "single_x4.png" in written and "a_x4_compare.png" in written
    assert Image.open(out / "single_x4.png").size == (132, 84)
    assert Image.open(out / "b_x4.png").mode == "RGB"  # ingest composites transparency on white
    assert Image.open(out / "a_x4_compare.png").size == (2 * 160 + 8, 200)
    assert "wrote 5 of 5 files" in capsys.readouterr().out
    # without --side-by-side every PNG is streamed band by band: the same pixels
    streamed = tmp_path / "streamed"
    assert _cli(*inputs, "--out", str(streamed)) == 0
    assert sorted(p.name for p in streamed.glob("*.png")) == [n for n in written if "compare" not in n]
    for name in ("single_x4.png", "b_x4.png", "a_x4.png"):
        assert np.array_equal(np.asarray(Image.open(streamed / name)), np.asarray(Image.open(out / name)))


def test_streaming_png_writer_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    for channels, mode in ((3, "RGB"), (4, "RGBA")):
        array = rng.integers(0, 256, (517, 301, channels), dtype=np.uint8)
        bands = [array[top : top + 100] for top in range(0, 517, 100)]
        save_png(tmp_path / f"{mode}.png", array.shape, iter(bands))
        with Image.open(tmp_path / f"{mode}.png") as img:
            assert img.mode == mode and np.array_equal(np.asarray(img), array)
    with pytest.raises(ValueError, match="rows"):
        save_png(tmp_path / "short.png", (10, 4, 3), [np.zeros((5, 4, 3), np.uint8)])


def test_cli_rejects_bad_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    assert _cli(str(tmp_path / "missing.png"), "--model", "x.ckpt", "--out", str(tmp_path)) == 2
    assert "not an image or video file" in capsys.readouterr().err
    (tmp_path / "img.png").write_bytes(b"")
    corrupt = tmp_path / "bad.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    assert _cli(str(tmp_path / "img.png"), "--model", str(corrupt), "--out", str(tmp_path / "o")) == 2
    assert "checkpoint_corrupt" in capsys.readouterr().err
    assert (
        _cli(str(tmp_path / "img.png"), "--model", str(corrupt), "--out", str(tmp_path), "--tile", "16") == 2
    )
    assert "must exceed 2 * overlap" in capsys.readouterr().err


TILE, OVERLAP = 64, 8


@pytest.fixture(scope="module")
def bird(shared_data) -> Image.Image:
    """A real 288 x 260 RGB crop (not square, so a rotation shows in the size)."""
    with Image.open(shared_data / "sr_benchmarks" / "Set5" / "bird.png") as image:
        return image.convert("RGB").crop((0, 0, 288, 260))


def _odd_encodings(bird: Image.Image) -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    gray16 = Image.fromarray(np.asarray(bird.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    rgba = bird.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(bird.size))
    return {
        "rotated.jpg": encode(bird, "JPEG", quality=92, exif=exif.tobytes()),
        "gray16.png": encode(gray16, "PNG"),
        "cmyk.jpg": encode(bird.convert("CMYK"), "JPEG", quality=92),
        "transparent.png": encode(rgba, "PNG"),
    }


def test_cli_upscales_the_pixels_ingest_normalizes(tmp_path, shared_data, bird, monkeypatch, capsys):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path / 'root'}")
    folder = tmp_path / "in"
    folder.mkdir()
    cases = _odd_encodings(bird)
    for name, data in cases.items():
        (folder / name).write_bytes(data)
    ckpt = trained_checkpoint(tmp_path / "m.ckpt", shared_data / "sr_train" / "T91")
    out = tmp_path / "out"
    argv = [
        str(folder),
        "--model",
        str(ckpt),
        "--out",
        str(out),
        "--tile",
        str(TILE),
        "--overlap",
        str(OVERLAP),
    ]
    assert _cli(*argv) == 0, capsys.readouterr().err

    model = build_arch("espcn", 4, **TRAINED_ARCH_KWARGS)
    model.load_state_dict(trained_espcn_state(shared_data / "sr_train" / "T91"))  # the EMA weights
    for name, data in cases.items():
        ingested = normalize(data)  # what ingest stores for these bytes
        assert isinstance(ingested, NormalizedImage) and ingested.flags, (name, ingested)
        expected = upscale_image(model.eval(), ingested.pixels, 4, TILE, OVERLAP, device="cpu")
        with Image.open(out / f"{name.rsplit('.', 1)[0]}_x4.png") as written:
            assert written.mode == "RGB", name
            np.testing.assert_array_equal(np.asarray(written), expected, err_msg=name)
    assert normalize(cases["rotated.jpg"]).flags == {"exif_rotated"}
    assert Image.open(out / "rotated_x4.png").size == (4 * 260, 4 * 288)  # portrait, as displayed
    # 16-bit values are scaled to 8 bits (a plain Pillow convert would clip them to white)
    assert np.asarray(Image.open(out / "gray16_x4.png")).mean() < 200


def test_cli_reports_a_bad_file_on_one_line_and_finishes_the_others(
    tmp_path, shared_data, bird, monkeypatch, capsys
):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path / 'root'}")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.png").write_bytes(encode(bird.resize((40, 30)), "PNG"))
    (folder / "b_broken.jpg").write_bytes(corrupt_jpeg(3))
    (folder / "c_not_an_image.png").write_bytes(b"<html>not found</html>")
    (folder / "d_good.jpg").write_bytes(encode(bird.resize((21, 33)), "JPEG"))
    ckpt = trained_checkpoint(tmp_path / "m.ckpt", shared_data / "sr_train" / "T91")
    out = tmp_path / "out"
    assert _cli(str(folder), "--model", str(ckpt), "--out", str(out), "--tile", "32", "--overlap", "4") == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("crisp upscale:")]
    assert len(lines) == 2, captured.err
    assert lines[0].startswith("crisp upscale: b_broken: decode_error: ")
    assert lines[1].startswith("crisp upscale: c_not_an_image: not_an_image: ")
    assert sorted(p.name for p in out.glob("*.png")) == ["a_good_x4.png", "d_good_x4.png"]
    assert "wrote 2 of 4 files" in captured.out


def test_cli_upscales_a_real_clip_keeping_its_sound_and_reports_a_bad_video(
    tmp_path, shared_data, monkeypatch, capsys
):
    import av

    from tests.support.videos import real_clip_excerpt

    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path / 'root'}")
    folder = tmp_path / "in"
    folder.mkdir()
    clip = real_clip_excerpt(folder / "spin.mp4", frames=5, width=48)
    (folder / "broken.mp4").write_bytes(clip.read_bytes()[:600])
    ckpt = trained_checkpoint(tmp_path / "m.ckpt", shared_data / "sr_train" / "T91")
    out = tmp_path / "out"
    code = _cli(
        str(folder), str(clip), "--model", str(ckpt), "--out", str(out), "--tile", "32", "--overlap", "4"
    )
    captured = capsys.readouterr()
    assert code == 1
    assert [line for line in captured.err.splitlines() if line.startswith("crisp upscale:")] == [
        line for line in captured.err.splitlines() if line.startswith("crisp upscale: broken: decode_error: ")
    ]
    assert "wrote 2 of 3 files" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["spin_x4.mp4"]  # the folder's and the direct copy
    with av.open(str(clip)) as a, av.open(str(out / "spin_x4.mp4")) as b:
        assert (b.streams.video[0].width, b.streams.video[0].height) == (192, 112)
        assert (
            b.streams.video[0].frames == 5
            and b.streams.video[0].average_rate == a.streams.video[0].average_rate
        )
        assert b.streams.audio[0].codec_context.name == "aac"
        assert b.streams.audio[0].frames == a.streams.audio[0].frames
        # the model's output: each frame is close to the model run on the source frame as an image
        model = build_arch("espcn", scale=4, **TRAINED_ARCH_KWARGS)
        model.load_state_dict(trained_espcn_state(shared_data / "sr_train" / "T91"))
        first = next(a.decode(video=0)).to_ndarray(format="rgb24")
        want = upscale_image(model.eval(), first, 4, tile=32, overlap=4, device="cpu").astype(float)
        got = next(b.decode(video=0)).to_ndarray(format="rgb24")
        assert np.abs(got - want).mean() < 4.0
