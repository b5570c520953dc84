"""Exercise 4's real run drawn: the loss curve, as the lecture plots it (PNG)."""

from __future__ import annotations


def save_loss_plot(lossi: tuple[float, ...], path: str) -> str:
    """The lecture's loss curve: log10 loss, averaged over windows of steps."""
    import matplotlib  # noqa: PLC0415 - only the full run draws
    import torch  # noqa: PLC0415 - already loaded: the run is over

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    window = 1000 if len(lossi) >= 20_000 else max(1, len(lossi) // 20)
    usable_steps = len(lossi) // window * window
    curve = torch.tensor(lossi[:usable_steps]).view(-1, window).mean(1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([(i + 1) * window for i in range(len(curve))], curve.tolist())
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (mean over {window} steps)")
    ax.set_title("exercise 4: training with your backward pass")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
