"""Starting a per-channel-window network from weights trained on one window copied to three channels.

A checkpoint trained on one CT window sees the same image in its three input channels. Given other windows
in channels 2 and 3, its first convolution would mix in images it never saw and the fine-tune would start
far from the weights it came from. Instead the first convolution is rewritten to compute, from channel 1
alone, exactly what it computed from the three copies (the other channels start at zero weight, so their
gradients, not their noise, decide what they add), with the constant that the per-channel normalisation
leaves folded into the convolution's bias or the BatchNorm that follows it. Away from the image's border
the rewritten network is the same function; within the kernel's reach of the border, zero padding makes
it differ slightly.
"""

from __future__ import annotations

from lsms_core.errors import ConfigError


def first_input_conv(model) -> tuple[str, str | None]:
    """(the state-dict prefix of the first Conv2d that reads the 3-channel image, that of the BatchNorm2d
    right after it or None)."""
    import torch.nn as nn

    names = list(model.named_modules())
    for i, (name, module) in enumerate(names):
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            follow = names[i + 1] if i + 1 < len(names) else None
            bn = follow[0] if follow is not None and isinstance(follow[1], nn.BatchNorm2d) else None
            return name, bn
    raise ConfigError("init", "the network has no convolution that reads a 3-channel image")


def spread_to_channel_windows(model, state: dict, mean, std) -> dict:
    """``state`` (of ``model``, trained on one window in every channel) with its first convolution
    rewritten to read that window from channel 1 only (see the module's docstring)."""
    import torch

    conv, bn = first_input_conv(model)
    key = f"{conv}.weight"
    if key not in state:
        raise ConfigError("init", f"the weights hold no {key}")
    w = state[key].float()  # (out, 3, kh, kw)
    m = torch.tensor([float(v) for v in mean])
    s = torch.tensor([float(v) for v in std])
    # Old: sum_c W_c * (u - m_c) / s_c. New: W0' * (u - m_0) / s_0 with W0' = s_0 * sum_c W_c / s_c gives the
    # same u-term; the constants differ by delta per output channel (over the whole kernel).
    scaled = (w / s.view(1, 3, 1, 1)).sum(dim=1)  # (out, kh, kw): sum_c W_c / s_c
    new = torch.zeros_like(w)
    new[:, 0] = s[0] * scaled
    old_const = -(w.sum(dim=(2, 3)) * (m / s).view(1, 3)).sum(dim=1)
    new_const = -m[0] * scaled.sum(dim=(1, 2))
    delta = new_const - old_const  # the new convolution's output = the old one's + delta
    out = dict(state)
    out[key] = new.to(state[key].dtype)
    bias = f"{conv}.bias"
    if bias in state:
        out[bias] = (state[bias].float() - delta).to(state[bias].dtype)
    elif bn is not None and f"{bn}.running_mean" in state:
        rm = f"{bn}.running_mean"
        out[rm] = (state[rm].float() + delta).to(state[rm].dtype)
    else:
        raise ConfigError("init", f"{conv} has neither a bias nor a BatchNorm after it to take the constant")
    return out
