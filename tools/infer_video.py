#!/usr/bin/env python3
"""Run a trained detft model on a video file, an image folder, a webcam or a live stream: ``detft video``.

    python tools/infer_video.py --weights runs/train --source video.mp4 --out out.mp4 --jsonl dets.jsonl
    python tools/infer_video.py --weights runs/train --source rtsp://camera/stream --track --show

See ``--help`` for every option; the loop itself lives in detft.inference.video."""

import sys

from detft.cli import main

if __name__ == "__main__":
    sys.exit(main(["video", *sys.argv[1:]]))
