"""Video: probe and validate product videos, hash them for dedup, stream their frames through a transform.

In: video bytes or files (MP4 / MOV / WebM / MKV / AVI, decoded by PyAV's bundled FFmpeg) and a `VideoConfig`.
Out: `probe_video` -> `VideoProbe` (codec, size, fps, duration, frame count, audio, content id, sampled-frame
perceptual hashes) or a `Rejection` with a reason code; `near_duplicate` over two probes; `transcode_frames`
re-encodes a video frame by frame (bounded memory, fps and audio kept) as H.264 MP4.

Import from the modules (`pipeline.video.config`, `.hashing`, `.probe`, `.stream`): the package itself
imports nothing, so reading `VideoConfig` in the settings never loads FFmpeg.
"""
