"""Exports a small TorchScript autoencoder with python3-torch, the way a model trained in PyTorch
would be handed to mummi, and writes the frames it encoded and what it computed.

usage: export_torchscript.py VARIANT DIR
VARIANT: plain | standardized | no_decode | no_beads | wrong_input
Writes DIR/model.pt and, for plain/standardized, DIR/frames.f32 (8 frames of 30 beads),
DIR/latent.f32 (their encodings) and DIR/decoded.f32 (the decodings of those encodings), as
little-endian float32.
"""
import sys

import torch

BEADS, LATENT = 30, 6


class Autoencoder(torch.nn.Module):
    def __init__(self, inputs: int, with_beads: bool):
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(inputs, 16), torch.nn.ELU(),
                                       torch.nn.Linear(16, LATENT))
        self.dec = torch.nn.Sequential(torch.nn.Linear(LATENT, 16), torch.nn.ELU(),
                                       torch.nn.Linear(16, BEADS * 3))
        if with_beads:
            self.n_beads = BEADS

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class EncoderOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Linear(BEADS * 3, LATENT)
        self.n_beads = BEADS

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def raw(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().numpy().astype("<f4").tobytes()


def main() -> None:
    variant, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(17)
    if variant == "no_decode":
        torch.jit.script(EncoderOnly()).save(f"{out}/model.pt")
        return
    inputs = 99 if variant == "wrong_input" else BEADS * 3
    module = Autoencoder(inputs, with_beads=variant != "no_beads").eval()
    mean = std = None
    if variant == "standardized":
        mean = torch.randn(BEADS * 3) * 3
        std = torch.rand(BEADS * 3) + 0.5
        module.register_buffer("mean", mean)
        module.register_buffer("std", std)
    scripted = torch.jit.script(module)
    scripted.save(f"{out}/model.pt")
    if variant not in ("plain", "standardized"):
        return
    frames = torch.randn(8, BEADS * 3) * 2
    with torch.no_grad():
        x = frames if mean is None else (frames - mean) / std
        latent = scripted.encode(x)
        decoded = scripted.decode(latent)
        if mean is not None:
            decoded = decoded * std + mean
    for name, t in (("frames", frames), ("latent", latent), ("decoded", decoded)):
        with open(f"{out}/{name}.f32", "wb") as f:
            f.write(raw(t))


if __name__ == "__main__":
    main()
