"""The generator's optional full-resolution refinement head (issue 14; ``GeneratorConfig.refine``)."""
from __future__ import annotations

import torch
from torch import nn

from nightgrade.models.networks import _conv3x3

_HP = 2  # RefineHead's correction keeps no mean over (2 * _HP + 1)^2 pixels


class RefineHead(nn.Module):
    """Full-resolution refinement (issue 14; not in the paper): ``layers`` 3x3 convs, ReLU between,
    from the output and the local RGB beside it to a correction of the output.

    With ``n_downsample = 3`` the generator's only full-resolution work is its last decoder conv and
    the output conv, so one-pixel detail is either kept with its noise (the global residual) or
    smoothed away with it. The head gives full-resolution capacity, seeing both the denoised output
    and the input it came from. It reaches ``layers + _HP`` pixels each way (8 with 6 convs), far
    inside the tile overlap, so it keeps the generator tile-consistent. The last conv starts at zero:
    a head added to a trained model starts as that model.
    """

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        cin = 6
        for _ in range(layers - 1):
            convs += [_conv3x3(cin, width, bias=True), nn.ReLU(inplace=True)]
            cin = width
        convs.append(_conv3x3(cin, 3, bias=True))
        self.body = nn.Sequential(*convs)

    def zero_last(self) -> None:
        last = self.body[-1][1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, y: torch.Tensor, local_rgb: torch.Tensor) -> torch.Tensor:
        correction = self.body(torch.cat([y, local_rgb], dim=1))
        # detail only: the correction's local mean is taken out, so the head cannot regrade (tone and
        # colour stay the generator's and the exposure branch's, which see the whole frame)
        padded = nn.functional.pad(correction, (_HP,) * 4, mode="reflect")
        smooth = nn.functional.avg_pool2d(padded, 2 * _HP + 1, stride=1)
        return torch.clamp(y + correction - smooth, -1.0, 1.0)
