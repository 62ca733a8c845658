"""Generated renderer training data: textured squares seen under random similarity transforms.

Each actor has a smooth random RGB texture; each frame maps it onto a rotated,
scaled, shifted square over a smooth random background. ``uv`` is the exact
inverse mapping, ``face_mask`` the square, ``region`` its lower half
(v > 0.5). A renderer that learns the textures reproduces the region exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from d4e.core.config import from_dict
from d4e.train.config import PriorConfig


class SyntheticFrames(torch.utils.data.Dataset):
    def __init__(self, n_actors: int = 2, n_frames: int = 12, size: int = 32, seed: int = 0):
        self.size = size
        tex = torch.rand(n_actors, 3, 4, 4, generator=torch.Generator().manual_seed(1234))  # same actors for every seed
        g = torch.Generator().manual_seed(seed)
        self.tex = F.interpolate(tex, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
        self.items = []
        for a in range(n_actors):
            for f in range(n_frames):
                ang = (torch.rand(1, generator=g).item() - 0.5) * 0.6
                scale = 0.55 + 0.2 * torch.rand(1, generator=g).item()
                shift = (torch.rand(2, generator=g) - 0.5) * 0.2
                bg = torch.rand(3, 2, 2, generator=g)
                self.items.append((a, ang, scale, shift, bg))

    def __len__(self) -> int:
        return len(self.items)

    def weights(self, balance_actors: bool) -> torch.Tensor:
        return torch.ones(len(self.items), dtype=torch.float64)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a, ang, scale, shift, bg = self.items[i]
        S = self.size
        c = (torch.arange(S) + 0.5) / S - 0.5  # centred normalised pixel coords
        y, x = torch.meshgrid(c, c, indexing="ij")
        p = torch.stack([x - shift[0], y - shift[1]], -1)
        ca, sa = math.cos(ang), math.sin(ang)
        R = torch.tensor([[ca, sa], [-sa, ca]])  # inverse rotation
        uv = (p @ R.T) / scale + 0.5
        inside = ((uv >= 0) & (uv <= 1)).all(-1).float()
        uv = uv.clamp(0, 1) * inside[..., None]
        face = F.grid_sample(self.tex[a : a + 1], uv[None] * 2 - 1, align_corners=False)[0]
        back = F.interpolate(bg[None], size=(S, S), mode="bilinear", align_corners=False)[0]
        m = inside[None]
        crop = m * face + (1 - m) * back
        region = m * (uv[..., 1] > 0.5).float()[None]
        return {"actor": torch.tensor(a), "crop": crop, "uv": uv, "face_mask": m, "region": region}


def tiny_config(**train) -> PriorConfig:
    """A very small prior config for tests (32 px, 3-level U-Net)."""
    t = {"batch_size": 4, "steps": 4, "val_every": 0, "ckpt_every": 0, "log_every": 1, "seed": 0, "grid_rows": 3}
    t.update(train)
    return from_dict(
        PriorConfig,
        {
            "texture": {"channels": 6, "resolution": 32, "levels": 3},
            "renderer": {"unet": {"base_width": 8, "depth": 3, "max_width": 32}},
            "loss": {"vgg": 0.0, "ssim_window": 5},
            "data": {"image_size": 32},
            "train": t,
        },
    )
