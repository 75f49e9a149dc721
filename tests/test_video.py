"""Video in posts: <video>/<source> MP4 and WebM stylized into the same container and duration,
audio copied untouched, the poster stylized as an image, bounds and a missing PyAV explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from blogroto.errors import ImageError  # noqa: E402
from blogroto.references import HTML_POSTER, HTML_VIDEO, find_image_refs  # noqa: E402
from blogroto.video import sniff_container, stylize_video  # noqa: E402
from tests.test_animation import build, one_post_site  # noqa: E402


def make_video(path: Path, fmt: str = "mp4", frames: int = 12, size=(64, 48), fps: int = 12, audio: bool = True) -> Path:
    """A panning textured clip with a sine tone, written by PyAV."""
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264" if fmt == "mp4" else "libvpx-vp9", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac" if fmt == "mp4" else "libopus", rate=48000) if audio else None
        if a is not None:
            a.layout = "mono"
        base = np.random.default_rng(0).integers(0, 255, (h, w + 3 * frames, 3), dtype=np.uint8)
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 3 * t : 3 * t + w]), format="rgb24")
            frame.pts = t
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            n = 48000 * frames // fps
            sound = av.AudioFrame.from_ndarray((np.sin(np.arange(n) / 10) * 0.3).astype(np.float32)[None],
                                               format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 48000, 0
            out.mux(a.encode(sound))
            out.mux(a.encode(None))
    return path


def probe(data_or_path):
    import io

    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(source) as c:
        info = {"streams": [(s.type, s.codec_context.name) for s in c.streams],
                "seconds": round(float(c.duration / av.time_base), 2)}
        audio = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    with av.open(io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)) as c:
        info["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    info["audio"] = audio
    return info


@pytest.mark.parametrize("fmt,codecs", [("mp4", ("h264", "aac")), ("webm", ("vp9", "opus"))])
def test_video_keeps_container_duration_frames_and_audio(tmp_path, fmt, codecs):
    src = make_video(tmp_path / f"clip.{fmt}", fmt)
    assert sniff_container(src.read_bytes()[:16]) == fmt
    before = probe(src)
    data = stylize_video(src, lambda f: 255 - f, 0.0, 0, 120, "clip", None)
    assert sniff_container(data[:16]) == fmt
    after = probe(data)
    assert after["streams"] == [("video", codecs[0]), ("audio", codecs[1])]
    assert after["seconds"] == before["seconds"] and len(after["frames"]) == len(before["frames"]) == 12
    assert after["audio"] == before["audio"]  # copied, not re-encoded
    diff = np.abs(after["frames"][6].astype(int) - (255 - before["frames"][6]).astype(int)).mean()
    assert diff < 12  # the filter's picture (lossy codecs allowed for)


def test_video_bounds_and_bad_input(tmp_path):
    src = make_video(tmp_path / "clip.mp4", audio=False)
    with pytest.raises(ImageError, match=r"clip\.mp4.*1 s long, over the limit of 0\.5 s"):
        stylize_video(src, lambda f: f, 0.6, 0, 0.5, "clip.mp4", None)
    small = probe(stylize_video(src, lambda f: f, 0.6, 32, 120, "clip.mp4", None))
    assert small["frames"][0].shape == (24, 32, 3) and small["streams"] == [("video", "h264")]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(src.read_bytes()[:200])
    with pytest.raises(ImageError, match="broken.mp4"):
        stylize_video(broken, lambda f: f, 0.6, 0, 120, "broken.mp4", None)
    assert sniff_container(b"ID3\x04" + b"\0" * 12) is None  # audio is not a video


def test_references_find_video_and_poster():
    body = ('<video controls poster="/p.jpg" src="/a.mp4"></video>\n\n'
            '<video controls>\n  <source src="/b.webm" type="video/webm">\n</video>\n\n'
            '<picture><source srcset="/c.webp"><img src="/c.jpg"></picture>\n')
    refs = {(r.kind, r.path) for r in find_image_refs(body)}
    assert {(HTML_POSTER, "/p.jpg"), (HTML_VIDEO, "/a.mp4"), (HTML_VIDEO, "/b.webm")} <= refs
    assert ("html-srcset", "/c.webp") in refs and ("html-src", "/c.jpg") in refs


def video_site(root: Path, tiny_filter_dir: Path) -> Path:
    from PIL import Image

    root = one_post_site(root, tiny_filter_dir, '<video controls poster="/assets/poster.jpg">\n'
                                                '  <source src="/assets/clip.mp4" type="video/mp4">\n</video>\n')
    make_video(root / "assets" / "clip.mp4")
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(root / "assets" / "poster.jpg")
    return root


def test_build_stylizes_video_and_poster(tmp_path, tiny_filter_dir, stylizer):
    root = video_site(tmp_path / "site", tiny_filter_dir)
    source = (root / "assets" / "clip.mp4").read_bytes()
    report = build(root, stylizer)
    assert report.errors == [] and report.warnings == [] and report.images_stylized == 2, report
    out = root / "_blogroto" / "site"
    (clip,) = (out / "assets" / "algorotoscope").glob("clip-tiny-*.mp4")
    (poster,) = (out / "assets" / "algorotoscope").glob("poster-tiny-*.jpg")
    post = (out / "_posts" / "2024-01-01-a.md").read_text()
    assert f'src="/assets/algorotoscope/{clip.name}"' in post and f'poster="/assets/algorotoscope/{poster.name}"' in post
    assert '"@type":"VideoObject","contentUrl":"/assets/algorotoscope/clip-tiny-' in post  # JSON-LD says what it is
    assert '{"@type":"VideoObject","contentUrl":"/assets/clip.mp4"' in post
    got = probe(clip)
    assert got["streams"] == [("video", "h264"), ("audio", "aac")] and len(got["frames"]) == 12
    assert (root / "assets" / "clip.mp4").read_bytes() == source
    assert build(root, stylizer).images_stylized == 0  # cached


def test_build_without_pyav_says_how_to_get_it(tmp_path, tiny_filter_dir, stylizer, monkeypatch):
    from blogroto import video

    monkeypatch.setattr(video, "available", lambda: False)
    root = video_site(tmp_path / "site", tiny_filter_dir)
    report = build(root, stylizer)
    assert report.errors == [] and any("pip install 'blogroto[video]'" in w and "2024-01-01-a.md:5" in w
                                       for w in report.warnings), report.warnings
    post = (root / "_blogroto" / "site" / "_posts" / "2024-01-01-a.md").read_text()
    assert 'src="/assets/clip.mp4"' in post  # left as it was


def test_remote_and_audio_sources_are_left_alone(tmp_path, tiny_filter_dir, stylizer, monkeypatch):
    from blogroto.build import remote

    fetched = []
    monkeypatch.setattr(remote.RemoteFetcher, "fetch", lambda self, url: fetched.append(url))
    root = one_post_site(tmp_path / "site", tiny_filter_dir,
                         '<video src="https://example.org/clip.mp4"></video>\n\n'
                         '<audio controls><source src="/assets/song.m4a" type="audio/mp4"></audio>\n')
    (root / "assets" / "song.m4a").write_bytes(b"\0\0\0\x20ftypM4A \0\0\0\0" + b"\0" * 64)
    report = build(root, stylizer)
    assert report.errors == [] and report.warnings == [] and report.images_stylized == 0, report
    assert fetched == []  # never downloaded
    post = (root / "_blogroto" / "site" / "_posts" / "2024-01-01-a.md").read_text()
    assert 'src="https://example.org/clip.mp4"' in post and 'src="/assets/song.m4a"' in post


def test_variable_frame_rate(tmp_path):
    """A phone's MP4 has uneven frame times: each frame keeps its own (they collided when the
    encoder counted in 1/frame rate)."""
    src = tmp_path / "vfr.mp4"
    with av.open(str(src), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.time_base = v.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        for t, ms in enumerate((0, 33, 50, 120, 121, 200, 260)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * t, np.uint8), format="rgb24")
            frame.pts = ms
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    data = stylize_video(src, lambda f: 255 - f, 0.6, 0, 120, "vfr.mp4", None)
    assert len(probe(data)["frames"]) == 7

