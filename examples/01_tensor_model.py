"""The tensor model in its two forms: parallel (training) and recurrent (stepping), and that they agree.

    python examples/01_tensor_model.py
"""
import torch

import bdh_graph
from bdh_graph.text import decode, encode

model = bdh_graph.load_model().double()  # the bundled model, in float64 for an exact comparison
print(f"bundled model: {model.config.n_layer} layers, d = {model.config.n_embd}, n = {model.config.n_neurons} neurons")

tokens = encode("The return statement leaves the current function call").unsqueeze(0)
parallel, _ = model(tokens)  # every position at once, attention over the prefix
recurrent = model.forward_recurrent(tokens)  # one token at a time, synaptic state rho
print(f"max |parallel - recurrent| = {(parallel - recurrent).abs().max().item():.2e}")

state = model.init_state(1)
for t in range(tokens.shape[1]):
    logits, state = model.step(tokens[:, t], state)
print(f"rho: {tuple(state.rho.shape)} (layers, batch, heads, d, N) after {state.position} tokens")
print("most likely next byte:", repr(decode(logits.argmax(-1))))

sample = model.float().generate(encode("The ").unsqueeze(0), 80, temperature=0.7,
                                generator=torch.Generator().manual_seed(0))
print("sample:", decode(sample[0]))
