"""Parameter and multiply-accumulate counts of the network (text encoder excluded), as papers report them."""

from __future__ import annotations

PAPER = {"params": 8.78e6, "gflops": 8.91, "input_size": 480}


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model, size: int, text_length: int = 32) -> int:
    """MACs of one forward pass on a (1, 3, size, size) image; convolutions and matrix products only."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    images = torch.zeros(1, 3, size, size, device=device)
    text = torch.zeros(1, model.cfg.text_dim, text_length, device=device)
    mask = torch.ones(1, text_length, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(images, text, mask)
    model.train(was_training)
    return int(counter.get_total_flops() // 2)
