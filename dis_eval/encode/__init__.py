"""Codes: encode a data set once with any encoder, cache the codes, and build the
representations (``mean``, ``sample``) the metrics sample from by row.

```python
codes = encode_data(encoder, data, batch_size=1024)     # EncodedData(mean, aux, family)
rep = representation(codes, kind="mean")                 # positions -> (len, D)
rep = representation(codes, kind="sample", seed=0)       # Echo / VAE sample, noise per call batch
```
"""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "EncodedData": ".codes", "validate_codes": ".codes",
    "load_encoder": ".encoders",
    "encode_data": ".encoding", "LazyCodes": ".encoding",
    "MeanRepresentation": ".representations", "SampleRepresentation": ".representations",
    "representation": ".representations", "REPRESENTATIONS": ".representations",
})
