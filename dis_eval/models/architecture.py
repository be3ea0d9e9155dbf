"""disentanglement_lib's convolutional encoder and decoder for 64x64x1 images (PyTorch).

Source of every size below: disentanglement_lib 1.5, ``methods/shared/architectures.py``
(``conv_encoder``, ``deconv_decoder``, ``fc_discriminator``), read from the installed package.
Checked there: conv 1 and 2 use kernel 4, conv 3 and 4 use kernel **2** (all stride 2, "same"
padding, ReLU); the decoder's four transposed convolutions all use kernel 4, stride 2.

TensorFlow "same" padding with stride 2 on even inputs is symmetric here: kernel 4 pads one
pixel per side (PyTorch ``padding=1``), kernel 2 pads nothing (``padding=0``); the transposed
convolutions with kernel 4, stride 2, ``padding=1`` exactly double the size, as TF's "same" does.
Weights use TF's default initialisers (Glorot-uniform kernels, zero biases).
"""

from __future__ import annotations

import torch
from torch import nn


def glorot_init_(module: nn.Module) -> None:
    """TF1 ``tf.layers`` defaults: Glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvEncoder(nn.Module):
    """Conv(32,k4,s2)-Conv(32,k4,s2)-Conv(64,k2,s2)-Conv(64,k2,s2)-Dense 256, then two heads.

    Returns the two head pre-activations (N, D) each: the Gaussian mean and log-variance for a
    VAE, or the pre-activations of f and log s for Echo (the model applies the activations).
    """

    def __init__(self, num_latents: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2, padding=1),  # 64 -> 32
            nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1),  # 32 -> 16
            nn.ReLU(),
            nn.Conv2d(32, 64, 2, stride=2, padding=0),  # 16 -> 8 (k2: dlib architectures.py e3)
            nn.ReLU(),
            nn.Conv2d(64, 64, 2, stride=2, padding=0),  # 8 -> 4 (k2: dlib architectures.py e4)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 256),
            nn.ReLU(),
        )
        self.head_a = nn.Linear(256, num_latents)
        self.head_b = nn.Linear(256, num_latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.head_a(h), self.head_b(h)


class DeconvDecoder(nn.Module):
    """Dense 256 - Dense 1024 - reshape 64x4x4 - 4 x ConvT(k4, s2): Bernoulli logits (N,1,64,64)."""

    def __init__(self, num_latents: int = 10, out_channels: int = 1) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(num_latents, 256),
            nn.ReLU(),
            nn.Linear(256, 1024),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1),  # 4 -> 8
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # 8 -> 16
            nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1),  # 16 -> 32
            nn.ReLU(),
            nn.ConvTranspose2d(32, out_channels, 4, stride=2, padding=1),  # 32 -> 64, logits
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 64, 4, 4)
        return self.deconv(h)
