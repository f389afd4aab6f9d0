"""The bundled model as a spiking network: spikes over K micro-steps whose average is the rate model.

    python examples/02_spiking_network.py          # writes spike_raster.png in the current folder
"""
import numpy as np

import bdh_graph
from bdh_graph.plots.spikes import plot_spike_raster

model = bdh_graph.load_model().double()
text = "def spikes(rate, steps):\n    return rate * steps\n"

rate = bdh_graph.build_network(model, wiring="hub")  # exact: messages carry the rates
exact = rate.run(text, progress=False)

for K in (4, 16, 64):
    net = bdh_graph.build_network(model, wiring="hub", mode="spike", spike_steps=K, seed=0)
    logits = net.run(text, progress=False)
    error = np.sqrt(np.mean((logits - exact) ** 2))
    agree = np.mean(logits.argmax(1) == exact.argmax(1))
    print(f"K = {K:3d}: {net.spikes / len(text):8.0f} spikes per byte, RMS logit error {error:.3f}, "
          f"top-1 agreement {agree:.0%}")

monitor = bdh_graph.SpikeMonitor(layers=[0, model.config.n_layer - 1])
net = bdh_graph.build_network(model, wiring="hub", mode="spike", spike_steps=16, seed=0)
net.run(text, monitors=[monitor], progress=False)
token, step, neuron = monitor.spikes(0, "y")
print(f"layer 0: {len(token)} y-spikes; the first at byte {token[0]}, micro-step {step[0]}, neuron {neuron[0]}")
print("raster:", plot_spike_raster(monitor, "spike_raster.png", population="y", title="bundled model"))
