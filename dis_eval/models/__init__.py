"""Models: Echo autoencoder, Gaussian VAE, FactorVAE discriminator, their objective, checkpoints.

Contract (ARCHITECTURE.md): ``model.family`` in {"echo", "vae"}; ``model.encode(x) -> (mean, aux)``
(Echo: f(x), log s(x) incl. log r; VAE: mean, log-variance); ``model.decode(z) -> logits``.
Built from a :class:`ModelSpec` by :func:`build_model`. Names load on first use (no torch at
import: see ``dis_eval._lazy``).
"""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "MODELS": ".spec", "FAMILIES": ".spec", "ModelSpec": ".spec",
    "FLOAT32_PRECISION": ".clip", "clip_factor": ".clip", "echo_terms": ".clip", "truncation_bound": ".clip",
    "build_model": ".build", "build_objective": ".build",
    "Discriminator": ".discriminator", "permute_dims": ".discriminator", "tc_estimate": ".discriminator",
    "EchoAutoencoder": ".echo", "echo_noise": ".echo", "echo_sample": ".echo",
    "GaussianVAE": ".gaussian", "gaussian_kl_per_dim": ".gaussian", "gaussian_sample": ".gaussian",
    "rate_per_latent": ".build",
    "Objective": ".losses", "StepOutput": ".losses",
    "load_model": ".checkpoint",
})
