#!/usr/bin/env python
"""Held-out PSNR of the W8A8 whole-model graph (torch simulation) vs FP32, min_max vs moving_average observers.
Shipped dramnet_tiny, tile 112; calibration: 12 tiles from skimage photos (one per batch), held out: 3 parity photos."""
import numpy as np, torch, skimage.data
torch.set_num_threads(1)
from dramnet_edge.calibrate.coreml_w8a8 import prepare_w8a8
from dramnet_edge.export.fold import fold_model, split_graphs
from dramnet_edge.export.sidecar import parity_photos
from dramnet_edge.models.builder import load_model
from dramnet_edge.weights import default_checkpoint
net, _ = load_model(default_checkpoint("dramnet_tiny"), tile=112)
folded = fold_model(net.eval(), "dft")
g = split_graphs(folded)["model"]
names = ("rocket", "coins", "moon", "camera", "text", "page", "retina", "cat", "hubble_deep_field", "immunohistochemistry", "brick", "grass")
calib = torch.from_numpy(parity_photos(112, names))
hold = torch.from_numpy(parity_photos(112))
batches = [(calib[i:i+1],) for i in range(len(calib))]
with torch.no_grad():
    ref = g(hold).clamp(0, 1)
    for obs in ("min_max", "moving_average_min_max"):
        q, _ = prepare_w8a8(g, batches[0], batches, activation_observer=obs)
        out = torch.cat([q(hold[i:i+1]) for i in range(len(hold))]).clamp(0, 1)
        psnr = [float(10 * torch.log10(1 / torch.mean((out[i] - ref[i]) ** 2))) for i in range(len(hold))]
        print(obs, "W8A8 vs FP32 PSNR per photo", [round(p, 2) for p in psnr], "mean", round(float(np.mean(psnr)), 2))
