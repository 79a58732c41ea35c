"""``docs/benchmarks.png``: first-text distributions of the three paths, and frames per reply against tokens."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.frames import model_tokens
from scripts.bench.report import Results


def write(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        ("model's first token", [m.first_token_s for m in results.model]),
        ("pipeline: first delta", [r.first_text_s for r in results.pipeline]),
        ("original: poll until complete", [p.seen_s for p in results.polling]),
    ]
    for label, samples in series:
        if not samples:
            continue
        ordered = sorted(samples)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        left.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})")
    left.set_xscale("log")
    left.set_xlabel("seconds from send to first visible text (log)")
    left.set_ylabel("fraction of replies")
    left.set_title("Time to first visible text")
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="lower right", fontsize=8)

    tokens = [len(model_tokens(r.text)) for r in results.pipeline]
    frames = [len(r.delta_sizes) for r in results.pipeline]
    if tokens:
        right.scatter(tokens, tokens, marker="x", label="one frame per token (baseline)")
        right.scatter(tokens, frames, marker="o", label="coalesced frames received")
    right.set_xlabel("output tokens in the reply")
    right.set_ylabel("delta frames")
    right.set_title("Frames per reply")
    right.grid(True, alpha=0.3)
    right.legend(loc="upper left", fontsize=8)
    figure.suptitle(
        f"Offline model pace: first token {results.pace.first_token_s:g} s, {results.pace.tokens_per_s:g} tokens/s "
        f"({results.mode} run)"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
