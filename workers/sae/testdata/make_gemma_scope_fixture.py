"""Writes a tiny Gemma Scope-style params.npz (JumpReLU SAE) and the reference
encoding/reconstruction of a few inputs, computed as Gemma Scope's tutorial does:
  pre = x @ W_enc + b_enc; acts = (pre > threshold) * relu(pre); recon = acts @ W_dec + b_dec
Run with Debian's python3: /usr/bin/python3 make_gemma_scope_fixture.py
"""
import numpy as np

rng = np.random.default_rng(7)
d_in, d_sae = 5, 8
W_enc = rng.standard_normal((d_in, d_sae)).astype(np.float32)
W_dec = rng.standard_normal((d_sae, d_in)).astype(np.float32)
b_enc = (0.1 * rng.standard_normal(d_sae)).astype(np.float32)
b_dec = (0.1 * rng.standard_normal(d_in)).astype(np.float32)
threshold = rng.uniform(0.2, 0.8, d_sae).astype(np.float32)
np.savez_compressed("gemma_scope_params.npz", W_enc=W_enc, W_dec=W_dec, b_enc=b_enc, b_dec=b_dec,
                    threshold=threshold)
np.savez("gemma_scope_params_stored.npz", W_enc=W_enc, W_dec=W_dec, b_enc=b_enc, b_dec=b_dec,
         threshold=threshold)

x = rng.standard_normal((4, d_in)).astype(np.float32)
# Gemma Scope's JumpReLU does not subtract b_dec from the input.
pre = x @ W_enc + b_enc
acts = (pre > threshold) * np.maximum(pre, 0)
recon = acts @ W_dec + b_dec
np.savez("gemma_scope_reference.npz", x=x, acts=acts.astype(np.float32), recon=recon.astype(np.float32))
