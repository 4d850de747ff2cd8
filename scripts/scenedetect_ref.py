#!/usr/bin/env python3
"""PySceneDetect's cut list for a video, as JSON, for the parity test of src/highlights/cuts.rs.

    scenedetect_ref.py VIDEO --detector content|adaptive [--scores]

Prints {"version", "detector", "cuts": [frame, ...], "frames": N} using the pinned library
(scripts/scenedetect-venv.sh) with its default detector settings and the SceneManager's
automatic downscale (what `scenedetect detect-content` / `detect-adaptive` do). With --scores,
also "scores": the per-frame content score (content_val; null where none was computed).
"""
import argparse
import json
import sys
import time

import scenedetect
from scenedetect import SceneManager, StatsManager, open_video
from scenedetect.detectors import AdaptiveDetector, ContentDetector


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--detector", choices=["content", "adaptive"], default="content")
    ap.add_argument("--scores", action="store_true", help="also print per-frame content scores")
    args = ap.parse_args()

    video = open_video(args.video, backend="opencv")
    stats = StatsManager() if args.scores else None
    manager = SceneManager(stats_manager=stats)
    manager.add_detector(ContentDetector() if args.detector == "content" else AdaptiveDetector())
    t0 = time.perf_counter()
    frames = manager.detect_scenes(video=video, show_progress=False)
    seconds = time.perf_counter() - t0
    out = {
        "version": scenedetect.__version__,
        "detector": args.detector,
        "cuts": [tc.get_frames() for tc in manager.get_cut_list(show_warning=False)],
        "frames": frames,
        "seconds": seconds,
    }
    if stats is not None:
        key = ContentDetector.FRAME_SCORE_KEY
        scores = []
        for n in range(frames):
            metrics = stats.get_metrics(n, [key]) if stats.metrics_exist(n, [key]) else [None]
            scores.append(metrics[0])
        out["scores"] = scores
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
